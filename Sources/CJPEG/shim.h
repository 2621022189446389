#ifndef VARLAB_CJPEG_SHIM_H
#define VARLAB_CJPEG_SHIM_H
/* libjpeg's default error handler calls exit(). These static inline wrappers (compiled into whichever Swift
 * module imports CJPEG; no separate C target needed) install an error_exit that longjmps back into the
 * wrapper, so every libjpeg error becomes an error code plus message. setjmp and longjmp stay inside C
 * frames: no Swift code runs between them. A premature end of data (a truncated file), which libjpeg only
 * warns about and pads with gray, is treated as an error too. */
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 64];
    int warnings;
} varlab_jpeg_error;

static void varlab_jpeg_error_exit(j_common_ptr cinfo) {
    varlab_jpeg_error *e = (varlab_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void varlab_jpeg_emit_message(j_common_ptr cinfo, int level) {
    varlab_jpeg_error *e = (varlab_jpeg_error *)cinfo->err;
    if (level < 0) {
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) {  /* truncated data: refuse instead of padding */
            (*cinfo->err->format_message)(cinfo, e->message);
            longjmp(e->jump, 1);
        }
        e->warnings++;  /* other corrupt-data warnings are tolerated, like PIL does */
    }
}

static void varlab_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

static inline void varlab_jpeg_install(varlab_jpeg_error *e) {
    jpeg_std_error(&e->pub);
    e->pub.error_exit = varlab_jpeg_error_exit;
    e->pub.emit_message = varlab_jpeg_emit_message;
    e->pub.output_message = varlab_jpeg_output_message;
    e->message[0] = 0;
    e->warnings = 0;
}

/* Decodes a JPEG into malloc'ed 8-bit pixels (1 channel for grayscale, 3 for everything else as RGB).
 * Returns 0 on success; otherwise copies the message into errbuf. The caller frees *pixels with free(). */
static inline int varlab_jpeg_decode(const unsigned char *data, unsigned long size, unsigned long long max_pixels,
                                     unsigned char **pixels, int *width, int *height, int *channels, char *errbuf, int errlen) {
    struct jpeg_decompress_struct cinfo;
    varlab_jpeg_error err;
    unsigned char *volatile out = NULL;
    *pixels = NULL;
    cinfo.err = &err.pub;
    varlab_jpeg_install(&err);
    if (setjmp(err.jump)) {
        if (out) free(out);
        jpeg_destroy_decompress(&cinfo);
        snprintf(errbuf, errlen, "%s", err.message);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    /* The pixel limit is checked from the header, before any buffer (progressive coefficients too) exists. */
    if ((unsigned long long)cinfo.image_width * (unsigned long long)cinfo.image_height > max_pixels) {
        snprintf(err.message, sizeof err.message, "%ux%u = %llu pixels is over the limit of %llu (set VARLAB_MAX_PIXELS to raise it)",
                 cinfo.image_width, cinfo.image_height,
                 (unsigned long long)cinfo.image_width * (unsigned long long)cinfo.image_height, max_pixels);
        longjmp(err.jump, 1);
    }
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        snprintf(err.message, sizeof err.message, "CMYK/YCCK JPEGs are not supported");
        longjmp(err.jump, 1);
    }
    cinfo.out_color_space = cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    size_t total = stride * (size_t)cinfo.output_height;
    if (total == 0 || total > ((size_t)1 << 32)) {
        snprintf(err.message, sizeof err.message, "implausible image size %ux%u", cinfo.output_width, cinfo.output_height);
        longjmp(err.jump, 1);
    }
    out = (unsigned char *)malloc(total);
    if (!out) {
        snprintf(err.message, sizeof err.message, "out of memory for %zu bytes", total);
        longjmp(err.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    *channels = cinfo.output_components;
    jpeg_destroy_decompress(&cinfo);
    *pixels = out;
    return 0;
}

/* Encodes 8-bit gray (channels 1) or RGB (channels 3) pixels. quality 1...100; subsample420 != 0 gives
 * 4:2:0 chroma (libjpeg's and PIL's default), else 4:4:4. The caller frees *jpeg with free(). */
static inline int varlab_jpeg_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                                     int subsample420, unsigned char **jpeg, unsigned long *size, char *errbuf,
                                     int errlen) {
    struct jpeg_compress_struct cinfo;
    varlab_jpeg_error err;
    unsigned char *volatile buffer = NULL;
    unsigned long volatile bufsize = 0;
    *jpeg = NULL;
    *size = 0;
    cinfo.err = &err.pub;
    varlab_jpeg_install(&err);
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        if (buffer) free(buffer);
        snprintf(errbuf, errlen, "%s", err.message);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, (unsigned long *)&bufsize);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (channels == 3 && !subsample420) {
        cinfo.comp_info[0].h_samp_factor = 1;
        cinfo.comp_info[0].v_samp_factor = 1;
    }
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *jpeg = buffer;
    *size = bufsize;
    return 0;
}

#endif
