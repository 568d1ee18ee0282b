// tboard.h: TensorBoard event files of scalars, written by hand: a record file (each record its
// length, a masked CRC-32C of it, the bytes, a masked CRC-32C of them) of protobuf Event messages
// (wall time, step, a Summary of tag/simple_value pairs), the first one naming the format version
// ("brain.Event:2"), as TensorBoard's SummaryWriter writes them.
#ifndef CGRAD_TBOARD_H
#define CGRAD_TBOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TbWriter TbWriter;
// A new file DIR/events.out.tfevents.SECONDS.HOST (DIR is made if missing; the file is created
// new, never through a symlink); NULL with a message
TbWriter *tb_open(const char *dir, char *err, size_t errn);
// one scalar at a step (flushed at once, so a running TensorBoard sees it); 0, or -1 (a write failed)
int tb_scalar(TbWriter *w, const char *tag, int64_t step, double value);
void tb_close(TbWriter *w);
// CRC-32C (Castagnoli) of n bytes, and the masked form the records carry
uint32_t tb_crc32c(const void *data, size_t n);
uint32_t tb_masked_crc(const void *data, size_t n);

#ifdef __cplusplus
}
#endif

#endif
