// cgrad.h: what a model writer uses: the framework (cgrad_core.h: tensors, ops, layers, parameter
// sets, optimizers, MPI), images and datasets (data/), and the Hugging Face Trainer's loop for any
// model (train/trainer.h). Compile with `pkg-config --cflags --libs cgrad`. The ViT, the checkpoint
// formats and the image processors are under models/.
#ifndef CGRAD_H
#define CGRAD_H
#include "cgrad_core.h"
#include "data/dataset.h"
#include "data/image_grid.h"
#include "train/trainer.h"

#endif
