/* replay - a main() for a fuzz target built without libFuzzer: every file
 * named (or in a folder named) once through LLVMFuzzerTestOneInput.  Built
 * by `make test` (under ASan and UBSan with SANITIZE=1), so that the seed
 * corpora in tests/fuzz/corpus, and any crash a fuzzer finds once added
 * there, are run by every test run on every machine, clang or not.
 *   build/cpu/tests/fuzz/fuzz_stream tests/fuzz/corpus/stream */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long replayed;

static void replay(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		perror(path);
		exit(2);
	}
	if (S_ISDIR(st.st_mode)) {
		struct dirent **names;
		int n = scandir(path, &names, NULL, alphasort);
		if (n < 0) {
			perror(path);
			exit(2);
		}
		for (int i = 0; i < n; i++) {
			if (names[i]->d_name[0] != '.') {
				size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
				char *p = malloc(len);
				snprintf(p, len, "%s/%s", path, names[i]->d_name);
				replay(p);
				free(p);
			}
			free(names[i]);
		}
		free(names);
		return;
	}
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		perror(path);
		exit(2);
	}
	/* Exactly the file's bytes in a buffer of their own, as libFuzzer
	 * passes them: a read past the end is ASan's to see. */
	uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	size_t n = fread(buf, 1, (size_t)st.st_size, fp);
	fclose(fp);
	if (n != (size_t)st.st_size) {
		fprintf(stderr, "%s: short read\n", path);
		exit(2);
	}
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	replayed++;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		replay(argv[i]);
	printf("%s: %ld inputs replayed\n", argv[0], replayed);
	return 0;
}
