/* libFuzzer target: the llama2.c checkpoint reader and format detection. */
#include <string.h>

#include "fuzz_common.h"
#include "mcb/err.h"
#include "mcb/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mcb_errctx e;
	struct mcb_model m;
	char path[64];
	int fd = fuzz_file(data, size, path, sizeof(path));

	mcb_model_init(&m);
	if (mcb_llama2c_read(path, &m, &e) != 0 && !strstr(e.msg, path))
		abort();
	mcb_model_release(&m);
	(void)mcb_model_detect(path, &e);
	close(fd);
	return 0;
}
