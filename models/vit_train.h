// vit_train.h: the ViT image classifier as the Trainer's model (train/trainer.h): a batch's loss
// is the cross-entropy of its images (read through a Loader) against their labels; checkpoints
// hold the peft adapter when the model has LoRA, else the whole model as an HF directory.
#ifndef CGRAD_VIT_TRAIN_H
#define CGRAD_VIT_TRAIN_H

#include "../data/dataset.h"
#include "../train/trainer.h"
#include "adapter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    VitModel *m;
    Loader *L;
    PeftGen peft_gen; // the spelling of adapter keys in checkpoints
    TrainModel tm;
} VitTask;

// Fills t and returns its TrainModel, for trainer_train and trainer_evaluate; samples are the
// loader's dataset items. t must outlive the training.
TrainModel *vit_task(VitTask *t, VitModel *m, Loader *L, PeftGen peft_gen);

#ifdef __cplusplus
}
#endif

#endif
