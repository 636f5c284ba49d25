/* libFuzzer target: the GGUF reader (mcb_gguf_open through mcb_gguf_read_model). */
#include <string.h>

#include "fuzz_common.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mcb_errctx e;
	struct mcb_model m;
	struct mcb_gguf g;
	char path[64];
	int fd = fuzz_file(data, size, path, sizeof(path));

	if (mcb_gguf_open(path, &g, &e) == 0)
		mcb_gguf_close(&g);
	mcb_model_init(&m);
	if (mcb_gguf_read_model(path, &m, &e) != 0 && !strstr(e.msg, path))
		abort(); /* every message names the file */
	mcb_model_release(&m);
	close(fd);
	return 0;
}
