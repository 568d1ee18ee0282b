// cgrad.h: what a model writer uses: the framework (cgrad_core.h: tensors, ops, layers, parameter
// sets, optimizers, MPI), images and datasets (data/), and the Hugging Face Trainer's loop for any
// model (train/trainer.h). Compile with `pkg-config --cflags --libs cgrad`. The ViT, the checkpoint
// formats and the image processors are under models/.
//
// Beyond cgrad_core.h (whose opening comment is the guide to the framework):
//   data/dataset.h   images from a folder (one per class, or one label) or Fashion-MNIST's files,
//                    decoded and resized as Pillow does, split and batched by a Loader
//   data/image_grid.h  a batch [B, C, H, W] saved as one PNG grid (samples of a generative model)
//   train/trainer.h  the Hugging Face Trainer's loop for any model that fills a TrainModel (its
//                    parameter set and a function giving a batch's loss): accumulation, clipping,
//                    AdamW with HF's decay groups, schedules, logging, checkpoints, bit-exact resume,
//                    MPI, evaluation (trainer_evaluate) and the loss plot
#ifndef CGRAD_H
#define CGRAD_H
#include "cgrad_core.h"
#include "data/dataset.h"
#include "data/image_grid.h"
#include "train/trainer.h"

#endif
