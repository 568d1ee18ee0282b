// vit_train.c: the ViT classifier behind the Trainer's model interface.
#include "vit_train.h"

#include "../base/fileio.h"
#include "../formats/weights.h"

#include <stdio.h>
#include <string.h>

// pixel_values [n, C, H, W] and labels [n] of dataset items, in c
static Tensor *batch(VitTask *t, Ctx *c, const int64_t *items, int n, Tensor **labels, char *err, size_t errn) {
    const VitConfig *cf = &t->m->cfg;
    Tensor *x = tensor_new(c, DT_F32, 4, (int64_t[]){n, cf->num_channels, cf->image_size, cf->image_size});
    Tensor *y = tensor_new(c, DT_I64, 1, (int64_t[]){n});
    if (!x || !y) {
        snprintf(err, errn, "trainer: %s", ctx_error(c));
        return NULL;
    }
    if (loader_batch(t->L, items, n, x->data, y->data, err, errn) != 0) return NULL;
    *labels = y;
    return x;
}

static Tensor *vit_loss(void *self, Ctx *c, const int64_t *items, int n, double scale, double label_smoothing, char *err, size_t errn) {
    VitTask *t = self;
    Tensor *y, *x = batch(t, c, items, n, &y, err, errn);
    if (!x) return NULL;
    return ag_cross_entropy_smoothed(c, vit_forward(c, t->m, x, NULL), y, scale, label_smoothing); // scale * sum(CE)
}

static Tensor *vit_logits(void *self, Ctx *c, const int64_t *items, int n, int64_t *labels, char *err, size_t errn) {
    VitTask *t = self;
    Tensor *y, *x = batch(t, c, items, n, &y, err, errn);
    if (!x) return NULL;
    memcpy(labels, y->data, sizeof *labels * (size_t)n);
    return vit_forward(c, t->m, x, NULL);
}

static int vit_ckpt_save(void *self, const char *dir, char *err, size_t errn) {
    VitTask *t = self;
    if (t->m->has_lora) return adapter_save(t->m, dir, t->peft_gen, "", err, errn);
    return vit_save_pretrained(t->m, dir, err, errn);
}

// LoRA's hyperparameters leave no trace in tensor shapes except r: compare them
static int same_lora(const VitModel *m, const char *path, char *err, size_t errn) {
    AdapterConfig ac;
    if (adapter_config_load(&ac, path, err, errn) != 0) return -1;
    const VitLoraSpec *s = &m->lora;
    if (ac.spec.r != s->r || ac.spec.alpha != s->alpha || ac.spec.dropout != s->dropout || // cJSON writes doubles that read back exactly
        ac.spec.rslora != s->rslora || strcmp(ac.spec.target_regex, s->target_regex)) {
        return errorf(
            err, errn,
            "%s: made with LoRA r %d, alpha %g, dropout %g%s%s, these settings give r %d, alpha %g, dropout %g%s%s: resume with the "
            "same settings",
            path, ac.spec.r, ac.spec.alpha, ac.spec.dropout, ac.spec.target_regex[0] ? ", regex " : "", ac.spec.target_regex, s->r,
            s->alpha, s->dropout, s->target_regex[0] ? ", regex " : "", s->target_regex);
    }
    return 0;
}

// the trainable tensors back from a checkpoint, under any of the ViT's spellings of their names
static int vit_ckpt_load(void *self, const char *dir, char *err, size_t errn) {
    VitModel *m = ((VitTask *)self)->m;
    char p[FILE_PATH_BUF];
    bool lora = m->has_lora;
    if (lora && same_lora(m, path_join(p, sizeof p, dir, "adapter_config.json"), err, errn) != 0) return -1;
    WFile tf;
    if (safetensors_open(&tf, path_join(p, sizeof p, dir, lora ? "adapter_model.safetensors" : "model.safetensors"), err, errn) != 0)
        return -1;
    int found = 0, rc = -1;
    for (int i = 0; i < m->params.n; i++) {
        Tensor *t = m->params.p[i].t;
        if (!t->requires_grad) continue;
        char canon[600];
        const WEntry *e = NULL;
        for (int k = 0; k < tf.n && !e; k++)
            if (!strcmp(vit_canonical_name(tf.e[k].name, canon, sizeof canon), m->params.p[i].name)) e = &tf.e[k];
        if (!e || e->dtype != WD_F32 || e->ndim != t->ndim || memcmp(e->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim)) {
            snprintf(err, errn, "%s: checkpoint lacks tensor '%s' of the right shape (was it made with other settings?)", p,
                     m->params.p[i].name);
            goto out;
        }
        memcpy(t->data, e->data, (size_t)tensor_numel(t) * 4);
        found++;
    }
    if (found != tf.n) { // e.g. fewer LoRA targets than the checkpoint was trained with
        snprintf(err, errn, "%s: checkpoint holds %d trainable tensors but these settings train %d: resume with the same settings", p, tf.n,
                 found);
        goto out;
    }
    rc = 0;
out:
    wfile_close(&tf);
    return rc;
}

TrainModel *vit_task(VitTask *t, VitModel *m, Loader *L, PeftGen peft_gen) {
    *t = (VitTask){m, L, peft_gen, {0}};
    const VitConfig *cf = &m->cfg;
    t->tm = (TrainModel){.self = t,
                         .params = &m->params,
                         .input_numel = (int64_t)cf->num_channels * cf->image_size * cf->image_size,
                         .loss = vit_loss,
                         .logits = vit_logits,
                         .nclasses = cf->num_labels,
                         .save = vit_ckpt_save,
                         .load = vit_ckpt_load};
    return &t->tm;
}
