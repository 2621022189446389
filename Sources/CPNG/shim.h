#ifndef VARLAB_CPNG_SHIM_H
#define VARLAB_CPNG_SHIM_H
/* libpng reports errors by longjmp to a setjmp point. This static inline wrapper (compiled into whichever
 * Swift module imports CPNG; no separate C target needed) keeps setjmp/longjmp inside C frames and turns
 * every error into a return code and message. Decoding uses the low-level API, which, unlike the simplified
 * png_image API, does no gamma conversion: pixels come out as stored, like PIL reads them. Transforms:
 * palette -> RGB, gray < 8 bits -> 8 bits (scaled), tRNS -> alpha, 16 bits -> 8 bits by the high byte
 * (png_set_strip_16, as PIL does for 16-bit RGB), gray+alpha -> RGBA. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <setjmp.h>
#include <png.h>

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t pos;
} varlab_png_reader;

typedef struct {
    char message[256];
} varlab_png_errinfo;

static void varlab_png_read_fn(png_structp png, png_bytep out, png_size_t count) {
    varlab_png_reader *r = (varlab_png_reader *)png_get_io_ptr(png);
    if (count > r->size - r->pos) png_error(png, "unexpected end of file (truncated PNG)");
    memcpy(out, r->data + r->pos, count);
    r->pos += count;
}

static void varlab_png_error_fn(png_structp png, png_const_charp msg) {
    varlab_png_errinfo *e = (varlab_png_errinfo *)png_get_error_ptr(png);
    snprintf(e->message, sizeof e->message, "%s", msg);
    png_longjmp(png, 1);
}

static void varlab_png_warning_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

/* Decodes a PNG into malloc'ed 8-bit pixels with 1 (gray), 3 (RGB) or 4 (RGBA) channels.
 * Returns 0 on success; otherwise copies the message into errbuf. The caller frees *pixels with free(). */
static inline int varlab_png_decode(const unsigned char *data, size_t size, unsigned long long max_pixels,
                                    unsigned char **pixels, int *width, int *height, int *channels, char *errbuf, int errlen) {
    varlab_png_reader reader = { data, size, 0 };
    varlab_png_errinfo einfo;
    png_structp png;
    png_infop info = NULL;
    unsigned char *volatile out = NULL;
    png_bytep *volatile rows = NULL;
    *pixels = NULL;
    einfo.message[0] = 0;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(errbuf, errlen, "not a PNG file (bad signature)");
        return 1;
    }
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &einfo, varlab_png_error_fn, varlab_png_warning_fn);
    if (!png) { snprintf(errbuf, errlen, "png_create_read_struct failed"); return 1; }
    info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); snprintf(errbuf, errlen, "out of memory"); return 1; }
    if (setjmp(png_jmpbuf(png))) {
        if (out) free(out);
        if (rows) free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        snprintf(errbuf, errlen, "%s", einfo.message[0] ? einfo.message : "libpng error");
        return 1;
    }
    png_set_read_fn(png, &reader, varlab_png_read_fn);
    png_set_user_limits(png, 1u << 20, 1u << 20);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((unsigned long long)w * (unsigned long long)h > max_pixels) {
        snprintf(einfo.message, sizeof einfo.message, "%ux%u = %llu pixels is over the limit of %llu (set VARLAB_MAX_PIXELS to raise it)",
                 w, h, (unsigned long long)w * (unsigned long long)h, max_pixels);
        png_longjmp(png, 1);
    }
    int color = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    int hasTRNS = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (hasTRNS) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_strip_16(png);
    int gray = (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA);
    int alpha = (color & PNG_COLOR_MASK_ALPHA) != 0 || hasTRNS;
    if (gray && alpha) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * (size_t)ch || !(ch == 1 || ch == 3 || ch == 4)) {
        snprintf(einfo.message, sizeof einfo.message, "unexpected layout after transforms (%d channels)", ch);
        png_longjmp(png, 1);
    }
    size_t total = rowbytes * (size_t)h;
    if (total == 0 || total > ((size_t)1 << 32)) {
        snprintf(einfo.message, sizeof einfo.message, "implausible image size %ux%u", w, h);
        png_longjmp(png, 1);
    }
    out = (unsigned char *)malloc(total);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
    if (!out || !rows) {
        snprintf(einfo.message, sizeof einfo.message, "out of memory for %zu bytes", total);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = out + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *pixels = out;
    *width = (int)w;
    *height = (int)h;
    *channels = ch;
    return 0;
}

#endif
