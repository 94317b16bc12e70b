/* safetensors.c - parse, validate and write safetensors documents. */
#define _GNU_SOURCE
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tk.h"

static const struct {
	const char *name;
	size_t size;
} dtypes[ST_NDTYPES] = {
	[ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},
	[ST_U16] = {"U16", 2},   [ST_I16] = {"I16", 2}, [ST_F16] = {"F16", 2},
	[ST_BF16] = {"BF16", 2}, [ST_U32] = {"U32", 4}, [ST_I32] = {"I32", 4},
	[ST_F32] = {"F32", 4},   [ST_U64] = {"U64", 8}, [ST_I64] = {"I64", 8},
	[ST_F64] = {"F64", 8},
};

const char *st_dtype_name(enum st_dtype t)
{
	return (unsigned)t < ST_NDTYPES ? dtypes[t].name : "?";
}

int st_dtype_parse(const char *name)
{
	for (int i = 0; i < ST_NDTYPES; i++)
		if (strcmp(name, dtypes[i].name) == 0)
			return i;
	return -1;
}

size_t st_dtype_size(enum st_dtype t)
{
	return (unsigned)t < ST_NDTYPES ? dtypes[t].size : 0;
}

void st_init(struct st_doc *d)
{
	memset(d, 0, sizeof *d);
}

void st_clear(struct st_doc *d)
{
	for (int i = 0; i < d->n; i++)
		free(d->t[i].name);
	for (int i = 0; i < d->nmeta; i++) {
		free(d->meta[i].key);
		free(d->meta[i].val);
	}
	d->n = d->nmeta = 0;
	d->data_size = 0;
}

void st_free(struct st_doc *d)
{
	st_clear(d);
	free(d->t);
	free(d->meta);
	free(d->buf);
	st_init(d);
}

size_t st_numel(const struct st_tensor *t)
{
	size_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= (size_t)t->shape[i];
	return n;
}

struct st_tensor *st_find(const struct st_doc *d, const char *name)
{
	for (int i = 0; i < d->n; i++)
		if (strcmp(d->t[i].name, name) == 0)
			return &d->t[i];
	return NULL;
}

const char *st_meta_get(const struct st_doc *d, const char *key)
{
	for (int i = 0; i < d->nmeta; i++)
		if (strcmp(d->meta[i].key, key) == 0)
			return d->meta[i].val;
	return NULL;
}

void st_meta_set(struct st_doc *d, const char *key, const char *val)
{
	for (int i = 0; i < d->nmeta; i++)
		if (strcmp(d->meta[i].key, key) == 0) {
			char *v = xstrdup(val);
			free(d->meta[i].val);
			d->meta[i].val = v;
			return;
		}
	if (d->nmeta == d->capmeta) {
		d->capmeta = d->capmeta ? 2 * d->capmeta : 8;
		d->meta = xrealloc(d->meta, xmul(d->capmeta, sizeof *d->meta));
	}
	d->meta[d->nmeta].key = xstrdup(key);
	d->meta[d->nmeta].val = xstrdup(val);
	d->nmeta++;
}

void st_meta_setf(struct st_doc *d, const char *key, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	st_meta_set(d, key, buf);
}

void st_meta_copy(struct st_doc *dst, const struct st_doc *src)
{
	for (int i = 0; i < src->nmeta; i++)
		st_meta_set(dst, src->meta[i].key, src->meta[i].val);
}

static struct st_tensor *new_tensor(struct st_doc *d)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 8;
		d->t = xrealloc(d->t, xmul(d->cap, sizeof *d->t));
	}
	struct st_tensor *t = &d->t[d->n++];
	memset(t, 0, sizeof *t);
	return t;
}

struct st_tensor *st_add(struct st_doc *d, const char *name,
			 enum st_dtype dtype, int rank, const int64_t *shape,
			 const void *data)
{
	if (rank < 0 || rank > ST_MAX_RANK)
		die_data("tensor '%s': rank %d is out of range", name, rank);
	struct st_tensor *t = new_tensor(d);
	t->name = xstrdup(name);
	t->dtype = dtype;
	t->rank = rank;
	size_t n = st_dtype_size(dtype);
	for (int i = 0; i < rank; i++) {
		if (shape[i] < 0)
			die_data("tensor '%s': negative dimension", name);
		t->shape[i] = shape[i];
		n = xmul(n, (size_t)shape[i]);
	}
	t->nbytes = n;
	t->offset = d->data_size;
	t->data = (void *)data;
	d->data_size += n;
	return t;
}

/* ---- parsing ---- */

/* A JSON number that is an exact non-negative integer below 2^53. */
static int get_uint(const cJSON *j, uint64_t *out)
{
	if (!cJSON_IsNumber(j))
		return -1;
	double v = j->valuedouble;
	if (!(v >= 0) || v > 9007199254740992.0 || v != floor(v))
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int parse_tensor(struct st_tensor *t, const cJSON *j, char *err,
			size_t errlen, uint64_t *begin, uint64_t *end)
{
	const char *name = t->name;
	if (!cJSON_IsObject(j))
		return tk_errf(err, errlen, "tensor '%s': entry is not an object",
			    name);
	const cJSON *dt = NULL, *sh = NULL, *off = NULL, *f;
	cJSON_ArrayForEach(f, j)
	{
		if (strcmp(f->string, "dtype") == 0 && !dt)
			dt = f;
		else if (strcmp(f->string, "shape") == 0 && !sh)
			sh = f;
		else if (strcmp(f->string, "data_offsets") == 0 && !off)
			off = f;
		else
			return tk_errf(err, errlen,
				    "tensor '%s': unexpected field '%s'", name,
				    f->string);
	}
	if (!dt || !sh || !off)
		return tk_errf(err, errlen, "tensor '%s': missing %s", name,
			    !dt ? "dtype" : !sh ? "shape" : "data_offsets");
	if (!cJSON_IsString(dt))
		return tk_errf(err, errlen, "tensor '%s': dtype is not a string",
			    name);
	int ty = st_dtype_parse(dt->valuestring);
	if (ty < 0)
		return tk_errf(err, errlen, "tensor '%s': unknown dtype '%.32s'",
			    name, dt->valuestring);
	t->dtype = ty;
	if (!cJSON_IsArray(sh))
		return tk_errf(err, errlen, "tensor '%s': shape is not an array",
			    name);
	int rank = cJSON_GetArraySize(sh);
	if (rank > ST_MAX_RANK)
		return tk_errf(err, errlen, "tensor '%s': rank %d exceeds %d",
			    name, rank, ST_MAX_RANK);
	t->rank = rank;
	uint64_t bytes = st_dtype_size(ty);
	int i = 0;
	cJSON_ArrayForEach(f, sh)
	{
		uint64_t v;
		if (get_uint(f, &v) < 0)
			return tk_errf(err, errlen,
				    "tensor '%s': shape entry %d is not a "
				    "non-negative integer",
				    name, i);
		t->shape[i++] = (int64_t)v;
		if (__builtin_mul_overflow(bytes, v, &bytes) ||
		    bytes > ((uint64_t)1 << 53))
			return tk_errf(err, errlen,
				    "tensor '%s': shape is too large", name);
	}
	if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
	    get_uint(cJSON_GetArrayItem(off, 0), begin) < 0 ||
	    get_uint(cJSON_GetArrayItem(off, 1), end) < 0)
		return tk_errf(err, errlen,
			    "tensor '%s': data_offsets is not a pair of "
			    "non-negative integers",
			    name);
	if (*end < *begin)
		return tk_errf(err, errlen,
			    "tensor '%s': data_offsets [%llu, %llu] end before "
			    "they begin",
			    name, (unsigned long long)*begin,
			    (unsigned long long)*end);
	if (*end - *begin != bytes)
		return tk_errf(err, errlen,
			    "tensor '%s': shape and dtype %s give %llu bytes, "
			    "data_offsets [%llu, %llu] give %llu",
			    name, dtypes[ty].name, (unsigned long long)bytes,
			    (unsigned long long)*begin, (unsigned long long)*end,
			    (unsigned long long)(*end - *begin));
	t->nbytes = bytes;
	t->offset = *begin;
	return 0;
}

static const struct st_doc *sort_doc;
static int by_offset(const void *a, const void *b)
{
	const struct st_tensor *x = &sort_doc->t[*(const int *)a];
	const struct st_tensor *y = &sort_doc->t[*(const int *)b];
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	if (x->nbytes != y->nbytes)
		return x->nbytes < y->nbytes ? -1 : 1;
	return 0;
}
static int by_name(const void *a, const void *b)
{
	const struct st_tensor *x = &sort_doc->t[*(const int *)a];
	const struct st_tensor *y = &sort_doc->t[*(const int *)b];
	return strcmp(x->name, y->name);
}

/* Offsets sorted must tile [0, data_size) exactly; names must be unique. */
static int check_layout(struct st_doc *d, char *err, size_t errlen)
{
	if (d->n == 0)
		return 0;
	int *idx = xmalloc(xmul(d->n, sizeof *idx));
	for (int i = 0; i < d->n; i++)
		idx[i] = i;
	sort_doc = d;
	int rc = 0;
	qsort(idx, d->n, sizeof *idx, by_name);
	for (int i = 1; i < d->n && !rc; i++)
		if (strcmp(d->t[idx[i]].name, d->t[idx[i - 1]].name) == 0)
			rc = tk_errf(err, errlen, "tensor '%s' appears twice",
				  d->t[idx[i]].name);
	qsort(idx, d->n, sizeof *idx, by_offset);
	size_t expect = 0;
	for (int i = 0; i < d->n && !rc; i++) {
		const struct st_tensor *t = &d->t[idx[i]];
		if (t->offset > expect)
			rc = tk_errf(err, errlen,
				  "tensor '%s': gap of %zu bytes before its "
				  "data_offsets",
				  t->name, t->offset - expect);
		else if (t->offset < expect)
			rc = tk_errf(err, errlen,
				  "tensor '%s': data_offsets overlap another "
				  "tensor's",
				  t->name);
		expect = t->offset + t->nbytes;
	}
	free(idx);
	d->data_size = expect;
	return rc;
}

static int parse_meta(struct st_doc *d, const cJSON *m, char *err,
		      size_t errlen)
{
	if (!cJSON_IsObject(m))
		return tk_errf(err, errlen, "__metadata__ is not an object");
	const cJSON *f;
	/* The key first, so that later errors can name the frame. */
	cJSON_ArrayForEach(f, m) if (strcmp(f->string, "key") == 0 &&
				     cJSON_IsString(f))
	    st_meta_set(d, "key", f->valuestring);
	cJSON_ArrayForEach(f, m)
	{
		if (!cJSON_IsString(f))
			return tk_errf(err, errlen,
				    "metadata value of '%.64s' is not a string",
				    f->string);
		if (strcmp(f->string, "key") != 0 && st_meta_get(d, f->string))
			return tk_errf(err, errlen,
				    "metadata key '%.64s' appears twice",
				    f->string);
		st_meta_set(d, f->string, f->valuestring);
	}
	return 0;
}

int st_parse_header(struct st_doc *d, const char *json, size_t len,
		    char *err, size_t errlen)
{
	st_clear(d);
	if (len < 2 || json[0] != '{')
		return tk_errf(err, errlen, "header is not a JSON object");
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!root) {
		const char *at = cJSON_GetErrorPtr();
		long pos = at && at >= json && at <= json + len ? at - json : -1;
		return tk_errf(err, errlen, "header is not valid JSON (near byte %ld)",
			    pos);
	}
	int rc = 0;
	for (const char *p = end; p < json + len; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			rc = tk_errf(err, errlen,
				  "header has bytes after its JSON object");
			break;
		}
	if (!rc && !cJSON_IsObject(root))
		rc = tk_errf(err, errlen, "header is not a JSON object");
	const cJSON *f;
	if (!rc) {
		const cJSON *m =
		    cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
		if (m)
			rc = parse_meta(d, m, err, errlen);
	}
	int nmetas = 0;
	if (!rc)
		cJSON_ArrayForEach(f, root)
		{
			if (strcmp(f->string, "__metadata__") == 0) {
				if (++nmetas > 1) {
					rc = tk_errf(err, errlen,
						  "__metadata__ appears twice");
					break;
				}
				continue;
			}
			struct st_tensor *t = new_tensor(d);
			t->name = xstrdup(f->string);
			uint64_t b, e;
			if ((rc = parse_tensor(t, f, err, errlen, &b, &e)) < 0)
				break;
		}
	cJSON_Delete(root);
	if (!rc)
		rc = check_layout(d, err, errlen);
	return rc;
}

void st_bind_data(struct st_doc *d, uint8_t *data)
{
	for (int i = 0; i < d->n; i++)
		d->t[i].data = data + d->t[i].offset;
}

int st_parse_buffer(struct st_doc *d, uint8_t *buf, size_t len, char *err,
		    size_t errlen)
{
	st_clear(d);
	if (len < 8)
		return tk_errf(err, errlen, "file of %zu bytes is too short", len);
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | buf[i];
	if (n > ST_MAX_HEADER)
		return tk_errf(err, errlen,
			    "header length %llu exceeds the %u-byte limit",
			    (unsigned long long)n, ST_MAX_HEADER);
	if (n > len - 8)
		return tk_errf(err, errlen,
			    "header length %llu runs past the end of the file",
			    (unsigned long long)n);
	if (st_parse_header(d, (const char *)buf + 8, n, err, errlen) < 0)
		return -1;
	if (d->data_size != len - 8 - n)
		return tk_errf(err, errlen,
			    "tensors cover %zu bytes but the file holds %llu "
			    "after its header",
			    d->data_size, (unsigned long long)(len - 8 - n));
	st_bind_data(d, buf + 8 + n);
	return 0;
}

/* ---- writing ---- */

/* Tensors are laid out by decreasing element size (stable), so that each
 * is aligned to its element size when the data starts aligned. */
static int *layout_order(const struct st_doc *d, size_t *offsets)
{
	int *idx = xmalloc(xmul(d->n ? d->n : 1, sizeof *idx));
	int k = 0;
	for (size_t sz = 8; sz >= 1; sz /= 2)
		for (int i = 0; i < d->n; i++)
			if (st_dtype_size(d->t[i].dtype) == sz)
				idx[k++] = i;
	size_t off = 0;
	for (int i = 0; i < k; i++) {
		offsets[idx[i]] = off;
		off += d->t[idx[i]].nbytes;
	}
	return idx;
}

char *st_header_json(const struct st_doc *d, size_t *len)
{
	size_t *offsets = xmalloc(xmul(d->n ? d->n : 1, sizeof *offsets));
	free(layout_order(d, offsets));
	cJSON *root = cJSON_CreateObject();
	if (!root)
		die_io("out of memory");
	if (d->nmeta) {
		cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
		for (int i = 0; i < d->nmeta; i++)
			cJSON_AddStringToObject(m, d->meta[i].key,
						d->meta[i].val);
	}
	for (int i = 0; i < d->n; i++) {
		const struct st_tensor *t = &d->t[i];
		cJSON *o = cJSON_AddObjectToObject(root, t->name);
		cJSON_AddStringToObject(o, "dtype", st_dtype_name(t->dtype));
		cJSON *s = cJSON_AddArrayToObject(o, "shape");
		for (int k = 0; k < t->rank; k++)
			cJSON_AddItemToArray(
			    s, cJSON_CreateNumber((double)t->shape[k]));
		cJSON *a = cJSON_AddArrayToObject(o, "data_offsets");
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)offsets[i]));
		cJSON_AddItemToArray(
		    a, cJSON_CreateNumber((double)(offsets[i] + t->nbytes)));
	}
	free(offsets);
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!s)
		die_io("out of memory");
	size_t n = strlen(s), padded = (n + 7) & ~(size_t)7;
	s = xrealloc(s, padded + 1);
	memset(s + n, ' ', padded - n);
	s[padded] = 0;
	*len = padded;
	return s;
}

int st_write(FILE *fp, const struct st_doc *d)
{
	size_t n;
	char *h = st_header_json(d, &n);
	uint8_t len[8];
	for (int i = 0; i < 8; i++)
		len[i] = (uint8_t)((uint64_t)n >> (8 * i));
	int rc = fwrite(len, 1, 8, fp) == 8 && fwrite(h, 1, n, fp) == n ? 0 : -1;
	free(h);
	size_t *offsets = xmalloc(xmul(d->n ? d->n : 1, sizeof *offsets));
	int *idx = layout_order(d, offsets);
	for (int i = 0; i < d->n && rc == 0; i++) {
		const struct st_tensor *t = &d->t[idx[i]];
		if (t->nbytes && fwrite(t->data, 1, t->nbytes, fp) != t->nbytes)
			rc = -1;
	}
	free(idx);
	free(offsets);
	return rc;
}

/* ---- element access and half-precision conversion ---- */

float st_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0x1f) {
		bits = sign | 0x7f800000u | (man << 13);
	} else if (exp == 0) {
		if (man == 0) {
			bits = sign;
		} else { /* subnormal: normalise */
			int e = -1;
			do {
				man <<= 1;
				e++;
			} while (!(man & 0x400));
			bits = sign | (uint32_t)(127 - 15 - e) << 23 |
			       (man & 0x3ff) << 13;
		}
	} else {
		bits = sign | (exp + 112) << 23 | man << 13;
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

float st_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t st_f32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000) /* NaN stays a quiet NaN */
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1); /* round to nearest even */
	return (uint16_t)(x >> 16);
}

uint16_t st_f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	uint32_t ax = x & 0x7fffffff;
	if (ax > 0x7f800000)
		return sign | 0x7e00;
	if (ax >= 0x477ff000) /* rounds to >= 65520: infinity */
		return sign | 0x7c00;
	if (ax < 0x38800000) { /* below the smallest normal: subnormal */
		if (ax < 0x33000000)
			return sign;
		uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
		int shift = 126 - (int)e; /* value = m * 2^(e-150) = v * 2^-24 */
		uint32_t v = m >> (shift), rem = m & ((1u << shift) - 1),
			 half = 1u << (shift - 1);
		if (rem > half || (rem == half && (v & 1)))
			v++;
		return sign | (uint16_t)v;
	}
	uint32_t v = ax - (112u << 23);
	uint32_t rem = v & 0x1fff;
	v >>= 13;
	if (rem > 0x1000 || (rem == 0x1000 && (v & 1)))
		v++;
	return sign | (uint16_t)v;
}

double st_get(const struct st_tensor *t, size_t i)
{
	const uint8_t *p = (const uint8_t *)t->data + i * st_dtype_size(t->dtype);
	union {
		uint8_t u8;
		int8_t i8;
		uint16_t u16;
		int16_t i16;
		uint32_t u32;
		int32_t i32;
		uint64_t u64;
		int64_t i64;
		float f32;
		double f64;
	} v;
	memcpy(&v, p, st_dtype_size(t->dtype));
	switch (t->dtype) {
	case ST_BOOL: case ST_U8: return v.u8;
	case ST_I8: return v.i8;
	case ST_U16: return v.u16;
	case ST_I16: return v.i16;
	case ST_F16: return st_f16_to_f32(v.u16);
	case ST_BF16: return st_bf16_to_f32(v.u16);
	case ST_U32: return v.u32;
	case ST_I32: return v.i32;
	case ST_F32: return v.f32;
	case ST_U64: return (double)v.u64;
	case ST_I64: return (double)v.i64;
	case ST_F64: return v.f64;
	default: return NAN;
	}
}
