/*
 * fuzz_common: hand libFuzzer's input to a reader that takes a path.  The
 * bytes go into an anonymous memory file (memfd) opened by path through
 * /proc/self/fd, so nothing touches the disk and runs do not collide.
 */
#ifndef MCB_FUZZ_COMMON_H
#define MCB_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Write data to a fresh memfd; store its path in path.  Returns the fd (close it after). */
static int fuzz_file(const uint8_t *data, size_t size, char *path, size_t n)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	size_t done = 0;
	ssize_t w;

	if (fd < 0) {
		perror("memfd_create");
		abort();
	}
	while (done < size) {
		w = write(fd, data + done, size - done);
		if (w <= 0) {
			perror("write");
			abort();
		}
		done += (size_t)w;
	}
	snprintf(path, n, "/proc/self/fd/%d", fd);
	return fd;
}

#endif
