// results.h: the commands' results as text, one format each, shared by the commands that print
// them and the server that answers with them (predict's top-K, explain's map and picture).
#ifndef DEIT_LORA_RESULTS_H
#define DEIT_LORA_RESULTS_H

#include "../data/image.h"
#include "../models/vit_config.h"

#include <stdbool.h>
#include <stddef.h>

// A growing string; after an allocation failure it stays as it was and oom is set.
typedef struct {
    char *s;
    size_t n, cap;
    bool oom;
} StrBuf;

void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_append(StrBuf *b, const void *data, size_t n); // bytes (kept 0-terminated)
void sb_json_str(StrBuf *b, const char *s);            // a JSON string literal: quotes, escapes
void sb_free(StrBuf *b);

// ids of p[0..n) from the largest down; ties keep the lower id (torch.topk's order). Caller frees.
int *results_rank(const float *p, int n);
// predict's result for one image: JSON ({"image", "top": [{"label", "id", "prob"}]} and a newline)
// or text (the name, then "  LABEL  PROB" lines)
void results_predict(StrBuf *b, const char *image, const float *p, int top, bool json, const VitConfig *cfg);
// explain's map as one JSON line: {"image", "method", "label", "id", "prob", "grid": [G, G],
// "map": [[row 0], ...]} with the values as computed (not rescaled)
void results_explain_json(StrBuf *b, const char *image, const char *method, const VitConfig *cfg, int id, double prob, const double *map,
                          int grid);
// The map over the image as the model saw it: scaled to [0, 1] by its range, upsampled bilinearly
// to the image's size, coloured (blue, low, to red, high) and blended half and half.
int results_explain_overlay(const Image *seen, const double *map, int grid, Image *out);

#endif
