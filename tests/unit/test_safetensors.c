/* test_safetensors - half-precision conversions (every f16 and bf16 bit
 * pattern, rounding), header writing and parsing, document layout. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/safetensors.h"

static void test_f16(void)
{
	for (unsigned h = 0; h < 65536; h++) {
		float f = st_f16_to_f32((uint16_t)h);
		if (isnan(f))
			CHECK(isnan(st_f16_to_f32(st_f32_to_f16(f))));
		else
			CHECK(st_f32_to_f16(f) == h);
	}
	CHECK(st_f32_to_f16(1.0f) == 0x3c00);
	CHECK(st_f32_to_f16(65504.0f) == 0x7bff);
	CHECK(st_f32_to_f16(65519.0f) == 0x7bff);
	CHECK(st_f32_to_f16(65520.0f) == 0x7c00);
	CHECK(st_f32_to_f16(-INFINITY) == 0xfc00);
	CHECK(st_f32_to_f16(ldexpf(1, -24)) == 0x0001);
	CHECK(st_f32_to_f16(ldexpf(1, -25)) == 0x0000);           /* tie: even */
	CHECK(st_f32_to_f16(ldexpf(3, -25)) == 0x0002);           /* tie: even */
	CHECK(st_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00);    /* tie: even */
	CHECK(st_f32_to_f16(1.0f + ldexpf(3, -11)) == 0x3c02);    /* tie: even */
	CHECK(st_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)) == 0x3c01);
	CHECK(st_f16_to_f32(0x0001) == ldexpf(1, -24));
	CHECK(st_f16_to_f32(0x03ff) == ldexpf(1023, -24));
}

static void test_bf16(void)
{
	for (unsigned h = 0; h < 65536; h++) {
		float f = st_bf16_to_f32((uint16_t)h);
		if (!isnan(f))
			CHECK(st_f32_to_bf16(f) == h);
	}
	CHECK(st_f32_to_bf16(1.0f) == 0x3f80);
	CHECK(st_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80);  /* tie: even */
	CHECK(st_f32_to_bf16(1.0f + ldexpf(3, -8)) == 0x3f82);
	CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
}

static void test_roundtrip(void)
{
	struct st_doc d, r;
	st_init(&d);
	st_init(&r);
	uint8_t u8[3] = {1, 2, 3};
	double f64[2] = {1.5, -2.5};
	float f32[4] = {1, 2, 3, 4};
	st_meta_set(&d, "key", "img \"1\"\n");
	st_meta_set(&d, "label", "7");
	st_meta_set(&d, "label", "8"); /* replaces */
	st_add(&d, "u", ST_U8, 1, (int64_t[]){3}, u8);
	st_add(&d, "d", ST_F64, 2, (int64_t[]){1, 2}, f64);
	st_add(&d, "f", ST_F32, 2, (int64_t[]){2, 2}, f32);
	st_add(&d, "empty", ST_F32, 2, (int64_t[]){0, 5}, NULL);
	char *buf;
	size_t len;
	FILE *fp = open_memstream(&buf, &len);
	CHECK(st_write(fp, &d) == 0);
	fclose(fp);
	uint64_t hlen = 0;
	memcpy(&hlen, buf, 8);
	CHECK((8 + hlen) % 8 == 0);
	char err[256];
	CHECK(st_parse_buffer(&r, (uint8_t *)buf, len, err, sizeof err) == 0);
	CHECK(r.n == 4 && r.nmeta == 2);
	CHECK(strcmp(st_meta_get(&r, "key"), "img \"1\"\n") == 0);
	CHECK(strcmp(st_meta_get(&r, "label"), "8") == 0);
	struct st_tensor *t = st_find(&r, "d");
	CHECK(t && t->dtype == ST_F64 && t->rank == 2 && t->shape[1] == 2);
	CHECK(t && ((uintptr_t)t->data - (uintptr_t)buf) % 8 == 0); /* aligned */
	CHECK(t && memcmp(t->data, f64, sizeof f64) == 0);
	t = st_find(&r, "u");
	CHECK(t && memcmp(t->data, u8, 3) == 0);
	t = st_find(&r, "f");
	CHECK(t && st_get(t, 3) == 4.0);
	t = st_find(&r, "empty");
	CHECK(t && t->nbytes == 0 && st_numel(t) == 0);
	/* One byte more than the tensors cover is refused. */
	char *longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0;
	CHECK(st_parse_buffer(&r, (uint8_t *)longer, len + 1, err, sizeof err) < 0);
	CHECK(strstr(err, "after its header") != NULL);
	free(longer);
	free(buf);
	st_free(&d);
	st_free(&r);
}

static void test_bad_headers(void)
{
	static const char *bad[] = {
	    "", "{", "[]", "{\"x\":1}", "{\"x\":{\"dtype\":\"F32\"}}",
	    "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
	    "{\"x\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}",
	    "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,2,3,4,5,6,7,8,9],"
	    "\"data_offsets\":[0,4]}}",
	    "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{}}",
	    "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}",
	};
	struct st_doc d;
	st_init(&d);
	char err[256];
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = 0;
		int rc = st_parse_header(&d, bad[i], strlen(bad[i]), err, sizeof err);
		CHECK(rc < 0 && err[0]);
		if (rc == 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
	}
	const char *ok = "{\"__metadata__\":{\"key\":\"k\"}}   ";
	CHECK(st_parse_header(&d, ok, strlen(ok), err, sizeof err) == 0);
	CHECK(d.n == 0 && d.data_size == 0);
	st_free(&d);
}

int main(void)
{
	test_f16();
	test_bf16();
	test_roundtrip();
	test_bad_headers();
	return CHECK_DONE();
}
