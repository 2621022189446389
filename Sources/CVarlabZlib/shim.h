#ifndef VARLAB_CZLIB_SHIM_H
#define VARLAB_CZLIB_SHIM_H
/* zlib, for its fast crc32(): every stored zip entry (torch.save's tensors, .npz members) is checked
 * against the CRC-32 in its zip header before its bytes are used. */
#include <zlib.h>
#endif
