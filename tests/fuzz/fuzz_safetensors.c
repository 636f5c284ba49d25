/* libFuzzer target: the safetensors reader, the IR loader and the HF importer. */
#include <string.h>

#include "fuzz_common.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char config[] =
		"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":4,\"intermediate_size\":4,"
		"\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
		"\"vocab_size\":4,\"max_position_embeddings\":2,\"tie_word_embeddings\":true}";
	struct mcb_errctx e;
	struct mcb_st_file f;
	struct mcb_model m;
	char path[64], cpath[64];
	int fd = fuzz_file(data, size, path, sizeof(path));
	int cfd = fuzz_file((const uint8_t *)config, sizeof(config) - 1, cpath, sizeof(cpath));

	if (mcb_st_open(path, &f, &e) == 0)
		mcb_st_close(&f);
	else if (!strstr(e.msg, path))
		abort();
	mcb_model_init(&m);
	if (mcb_model_load_ir(path, &m, &e) != 0 && !strstr(e.msg, path))
		abort();
	mcb_model_release(&m);
	mcb_model_init(&m);
	if (mcb_hf_read(path, cpath, &m, &e) != 0 && !strstr(e.msg, path))
		abort();
	mcb_model_release(&m);
	close(cfd);
	close(fd);
	return 0;
}
