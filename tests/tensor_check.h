// tensor_check.h: how the suites compare a result with its reference (include after cgrad's headers).
#ifndef CGRAD_TENSOR_CHECK_H
#define CGRAD_TENSOR_CHECK_H

#include <math.h>

// ||a - b|| / ||b|| over all elements (the same count in both)
static inline double rel_l2(const Tensor *a, const Tensor *b) {
    double e = 0, r = 0;
    for (int64_t i = 0; i < tensor_numel(a); i++) {
        double x = tensor_get_flat(a, i), y = tensor_get_flat(b, i);
        e += (x - y) * (x - y), r += y * y;
    }
    return sqrt(e / r);
}

#endif
