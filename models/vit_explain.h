// vit_explain.h: where a ViT looks, as one value per image patch.
//   rollout:   attention rollout (Abnar & Zuidema, 2020): each layer's attention averaged over
//              heads, with the residual as identity, A' = 0.5 mean_h(A) + 0.5 I (rows renormalised),
//              multiplied from the first layer up; the [CLS] row over the patches.
//   relevance: gradient-weighted attention relevance (Chefer, Gur & Wolf, 2021): for the target
//              class's logit y, A_bar = mean_h((dy/dA * A)^+) per layer, R = I, R += A_bar R from
//              the first layer up; the [CLS] row over the patches.
#ifndef CGRAD_VIT_EXPLAIN_H
#define CGRAD_VIT_EXPLAIN_H

#include "vit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { VIT_EXPLAIN_ROLLOUT, VIT_EXPLAIN_RELEVANCE } VitExplainMethod;

// "rollout" / "relevance" -> the method; -1 for anything else
int vit_explain_method(const char *name);
const char *vit_explain_method_name(VitExplainMethod m);

// One image's pixel values [C, S, S] (as the image processor makes them): map[0 .. grid*grid)
// (row-major over the patch grid, grid = image_size / patch_size), for class target (-1: the
// predicted class, returned in *label with its probability in *prob). Uses c (reset first).
// 0, or -1 with a message in err.
int vit_explain(Ctx *c, VitModel *m, const float *pixels, VitExplainMethod method, int target, double *map, int *label, double *prob,
                char *err, size_t errn);

#ifdef __cplusplus
}
#endif

#endif
