/* npy.c - NumPy .npy header reading and writing (format versions 1-3). */
#include "npy.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tk.h"

static const struct {
	const char *descr;
	enum st_dtype dtype;
} descrs[] = {
	{"|b1", ST_BOOL}, {"|u1", ST_U8},  {"|i1", ST_I8},   {"<u2", ST_U16},
	{"<i2", ST_I16},  {"<f2", ST_F16}, {"|V2", ST_BF16}, {"<u4", ST_U32},
	{"<i4", ST_I32},  {"<f4", ST_F32}, {"<u8", ST_U64},  {"<i8", ST_I64},
	{"<f8", ST_F64},
};

/* Find "'key':" in the dict text and return what follows it. */
static const char *field(const char *dict, const char *key)
{
	char pat[32];
	snprintf(pat, sizeof pat, "'%s'", key);
	const char *p = strstr(dict, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (isspace((unsigned char)*p))
		p++;
	if (*p != ':')
		return NULL;
	p++;
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

static int parse_descr(const char *p, enum st_dtype *dt)
{
	if (*p != '\'')
		return -1;
	const char *q = strchr(p + 1, '\'');
	if (!q || q - p - 1 != 3)
		return -1;
	char d[4];
	memcpy(d, p + 1, 3);
	d[3] = 0;
	/* '=' (native) is little-endian on every machine we build for; one-byte
	 * types may carry any order character. */
	if (d[0] == '=')
		d[0] = '<';
	if (d[2] == '1' && (d[0] == '<' || d[0] == '>'))
		d[0] = '|';
	for (size_t i = 0; i < sizeof descrs / sizeof *descrs; i++)
		if (strcmp(d, descrs[i].descr) == 0) {
			*dt = descrs[i].dtype;
			return 0;
		}
	return -1;
}

int npy_read_header(FILE *fp, struct npy_header *h, char *err, size_t errlen)
{
	unsigned char pre[12];
	if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
		return tk_errf(err, errlen, "not a .npy file");
	int major = pre[6];
	size_t hlen;
	if (major == 1) {
		hlen = pre[8] | (size_t)pre[9] << 8;
	} else if (major == 2 || major == 3) {
		if (fread(pre + 10, 1, 2, fp) != 2)
			return tk_errf(err, errlen, "truncated .npy header");
		hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
		       (size_t)pre[11] << 24;
	} else {
		return tk_errf(err, errlen, "unsupported .npy version %d", major);
	}
	if (hlen > (1u << 24))
		return tk_errf(err, errlen, ".npy header of %zu bytes is too long",
			    hlen);
	char *dict = malloc(hlen + 1);
	if (!dict)
		return tk_errf(err, errlen, "out of memory");
	int rc = 0;
	if (fread(dict, 1, hlen, fp) != hlen) {
		rc = tk_errf(err, errlen, "truncated .npy header");
		goto out;
	}
	dict[hlen] = 0;
	const char *p = field(dict, "descr");
	if (!p || parse_descr(p, &h->dtype) < 0) {
		/* name what the file holds, when it is a plain type */
		const char *q = p && *p == '\'' ? strchr(p + 1, '\'') : NULL;
		if (q && q - p - 1 <= 8 && p[1] == '>')
			rc = tk_errf(err, errlen, ".npy dtype '%.*s' is big-endian: "
				     "give a little-endian array (numpy: "
				     "a.astype(a.dtype.newbyteorder('<')))",
				     (int)(q - p - 1), p + 1);
		else if (q && q - p - 1 <= 8)
			rc = tk_errf(err, errlen, ".npy dtype '%.*s' is not one tk "
				     "reads (bool, integers, float16, bfloat16, "
				     "float32, float64)", (int)(q - p - 1), p + 1);
		else
			rc = tk_errf(err, errlen, "unsupported or missing .npy descr");
		goto out;
	}
	p = field(dict, "fortran_order");
	if (!p || strncmp(p, "False", 5) != 0) {
		rc = tk_errf(err, errlen, "Fortran-ordered .npy arrays are not "
				       "supported");
		goto out;
	}
	p = field(dict, "shape");
	if (!p || *p != '(') {
		rc = tk_errf(err, errlen, "missing .npy shape");
		goto out;
	}
	p++;
	h->rank = 0;
	for (;;) {
		while (isspace((unsigned char)*p) || *p == ',')
			p++;
		if (*p == ')')
			break;
		if (!isdigit((unsigned char)*p) || h->rank == NPY_MAX_RANK) {
			rc = tk_errf(err, errlen, "bad or too long .npy shape");
			goto out;
		}
		char *end;
		long long v = strtoll(p, &end, 10);
		if (v < 0 || v > (1ll << 48)) {
			rc = tk_errf(err, errlen, "bad .npy shape");
			goto out;
		}
		h->shape[h->rank++] = v;
		p = end;
		while (*p == 'L')
			p++;
	}
	h->nbytes = st_dtype_size(h->dtype);
	for (int i = 0; i < h->rank; i++)
		if (__builtin_mul_overflow(h->nbytes, (size_t)h->shape[i], &h->nbytes)) {
			rc = tk_errf(err, errlen, ".npy shape of more than 2^64 bytes");
			goto out;
		}
out:
	free(dict);
	return rc;
}

static int header_dict(const struct npy_header *h, char *dict, size_t cap)
{
	const char *descr = NULL;
	for (size_t i = 0; i < sizeof descrs / sizeof *descrs; i++)
		if (descrs[i].dtype == h->dtype)
			descr = descrs[i].descr;
	if (!descr)
		return -1;
	int n = snprintf(dict, cap,
			 "{'descr': '%s', 'fortran_order': False, 'shape': (",
			 descr);
	for (int i = 0; i < h->rank; i++)
		n += snprintf(dict + n, cap - n, "%lld,%s",
			      (long long)h->shape[i], i + 1 < h->rank ? " " : "");
	n += snprintf(dict + n, cap - n, "), }");
	return n;
}

size_t npy_header_size(const struct npy_header *h)
{
	char dict[512];
	int n = header_dict(h, dict, sizeof dict);
	/* Magic, version, length, dict, newline; padded so that the data
	 * starts at a multiple of 64 bytes. */
	size_t total = 10 + (size_t)(n < 0 ? 0 : n) + 1;
	return total + (64 - total % 64) % 64;
}

int npy_write_header(FILE *fp, const struct npy_header *h, size_t size)
{
	char dict[512];
	int n = header_dict(h, dict, sizeof dict);
	if (n < 0)
		return -1;
	size_t natural = npy_header_size(h);
	if (size < natural)
		size = natural;
	size_t hlen = size - 10;
	if (hlen > 65535)
		return -1;
	unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
				 (unsigned char)hlen,
				 (unsigned char)(hlen >> 8)};
	if (fwrite(pre, 1, 10, fp) != 10 || fwrite(dict, 1, n, fp) != (size_t)n)
		return -1;
	for (size_t i = (size_t)n; i + 1 < hlen; i++)
		if (fputc(' ', fp) == EOF)
			return -1;
	return fputc('\n', fp) == EOF ? -1 : 0;
}
