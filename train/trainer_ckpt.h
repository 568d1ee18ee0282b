// trainer_ckpt.h: the Trainer's checkpoint files (internal to optim/).
#ifndef CGRAD_TRAINER_CKPT_H
#define CGRAD_TRAINER_CKPT_H

#include "trainer.h"

struct cJSON;
// rng: the model's generator (or the Trainer's own when the model has none)
int ckpt_save(const TrainArgs *a, const TrainModel *tm, const Rng *rng, const Optim *o, TrainState *st, char *err, size_t errn);
int ckpt_load(const char *dir, const TrainArgs *a, const TrainModel *tm, Rng *rng, Optim *o, TrainState *st, char *err, size_t errn);
struct cJSON *trainer_state_json(const TrainArgs *a, const TrainState *st);

#endif
