// results.h: the commands' results as text, one format each, shared by the commands that print
// them and the server that answers with them (predict's top-K, explain's map and picture).
#ifndef DEIT_LORA_RESULTS_H
#define DEIT_LORA_RESULTS_H

#include "../base/strbuf.h"
#include "../data/image.h"
#include "../models/vit_config.h"

#include <stdbool.h>
#include <stddef.h>

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
