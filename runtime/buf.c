/* buf: growable byte buffer. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/err.h"

void mcb_buf_release(struct mcb_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void mcb_buf_grow(struct mcb_buf *b, size_t n)
{
	size_t need;

	if (mcb_add_ok(b->len, n, &need) || mcb_add_ok(need, 1, &need))
		mcb_die("buffer size overflows");
	if (need <= b->cap)
		return;
	if (b->cap && need < b->cap * 2)
		need = b->cap * 2;
	if (need < 64)
		need = 64;
	b->data = mcb_xrealloc(b->data, need);
	b->cap = need;
}

void mcb_buf_add(struct mcb_buf *b, const void *p, size_t n)
{
	mcb_buf_grow(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void mcb_buf_adds(struct mcb_buf *b, const char *s)
{
	mcb_buf_add(b, s, strlen(s));
}

void mcb_buf_addc(struct mcb_buf *b, char c)
{
	mcb_buf_add(b, &c, 1);
}

void mcb_buf_vprintf(struct mcb_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		mcb_die("bad format string '%s'", fmt);
	mcb_buf_grow(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void mcb_buf_printf(struct mcb_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mcb_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void mcb_buf_reset(struct mcb_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

const char *mcb_buf_str(const struct mcb_buf *b)
{
	return b->data ? b->data : "";
}

char *mcb_buf_detach(struct mcb_buf *b, size_t *len)
{
	char *p;

	if (!b->data)
		mcb_buf_grow(b, 0), b->data[0] = '\0';
	p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

int mcb_parse_dec(const char *p, size_t n, int sign, uint64_t *u, int64_t *s)
{
	uint64_t x = 0, lim;
	int neg = 0;
	size_t i;

	if (sign && n && p[0] == '-') {
		neg = 1;
		p++;
		n--;
	}
	if (n == 0 || n > 20 || (p[0] == '0' && (n > 1 || neg)))
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, (uint64_t)(p[i] - '0'), &x))
			return -1;
	}
	if (!sign) {
		*u = x;
		return 0;
	}
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if (x > lim)
		return -1;
	*s = neg ? (x == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)x) : (int64_t)x;
	return 0;
}

int mcb_next_field(const char **p, const char *end, const char **f, size_t *n)
{
	const char *sp = memchr(*p, ' ', (size_t)(end - *p));

	if (!sp)
		return -1;
	*f = *p;
	*n = (size_t)(sp - *p);
	*p = sp + 1;
	return 0;
}

int mcb_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{"", 1},
		{"K", 1000},
		{"M", 1000000},
		{"G", 1000000000},
		{"T", 1000000000000},
		{"Ki", 1ull << 10},
		{"Mi", 1ull << 20},
		{"Gi", 1ull << 30},
		{"Ti", 1ull << 40},
	};
	unsigned __int128 whole = 0, frac = 0, scale = 1, v;
	const char *p = s;
	size_t i, n;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (unsigned)(*p - '0');
		if (whole > (unsigned __int128)1 << 63)
			return -1;
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (scale < 1000000000000000000ull) { /* further digits cannot matter */
				frac = frac * 10 + (unsigned)(*p - '0');
				scale *= 10;
			}
		}
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		n = strlen(units[i].unit);
		if (strncmp(p, units[i].unit, n) ||
		    !(p[n] == '\0' || (p[n] == 'B' && p[n + 1] == '\0')))
			continue;
		v = whole * units[i].mult + frac * units[i].mult / scale;
		if (v > (unsigned __int128)1 << 63)
			return -1;
		*out = (uint64_t)v;
		return 0;
	}
	return -1;
}

const char *mcb_human_bytes(uint64_t b, char *buf, size_t n)
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 6)
		v /= 1024, u++;
	if (u == 0)
		snprintf(buf, n, "%" PRIu64 " bytes", b);
	else
		snprintf(buf, n, "%.1f %s", v, units[u]);
	return buf;
}
