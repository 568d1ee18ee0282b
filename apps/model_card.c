// model_card.c: the README.md `deit_lora train` writes into its output folder, as the Hugging Face
// Trainer's users find one beside an adapter: peft's front matter (so the folder reads as a peft
// adapter repository), the data, the hyper-parameters, the logged losses and evaluations, and the
// final metrics.
#include "../base/strbuf.h"
#include "deit_lora.h"
#include "version.h"

#include <string.h>

static const char *base_name(const char *p) {
    const char *s = p ? strrchr(p, '/') : NULL;
    return s && s[1] ? s + 1 : p ? p : "";
}

int model_card_write(const ModelCard *c, const char *dir, char *err, size_t errn) {
    const TrainArgs *a = c->args;
    StrBuf b = {0};
    char base[300];
    snprintf(base, sizeof base, "%s", base_name(c->base_model));
    // (names from outside go in as JSON strings: valid YAML scalars, whatever their bytes)
    sb_printf(&b, "---\nbase_model: ");
    sb_json_str(&b, base);
    sb_printf(&b, "\nlibrary_name: peft\npipeline_tag: image-classification\ntags:\n- ");
    char tag[340];
    snprintf(tag, sizeof tag, "base_model:adapter:%s", base);
    sb_json_str(&b, tag);
    sb_printf(&b, "\n- lora\n- cgrad\n---\n\n# LoRA adapter for %s\n\n", base);
    sb_printf(&b, "Fine-tuned with `deit_lora train` (cgrad %s) to recognise the class `%s`.\n\n", DEIT_LORA_VERSION, c->label);
    sb_printf(&b, "## Training data\n\n%d images from `%s` for training, %d held out for evaluation.\n\n", c->ntrain, c->data, c->ntest);
    sb_printf(&b, "## Training hyper-parameters\n\n");
    sb_printf(&b, "- learning_rate: %g\n- train_batch_size: %d\n- gradient_accumulation_steps: %d\n- total_train_batch_size: %d\n", a->lr,
              a->batch_size, a->grad_accum, a->batch_size * a->grad_accum);
    sb_printf(&b, "- optimizer: AdamW (betas 0.9, 0.999, epsilon 1e-08), weight_decay %g, max_grad_norm %g\n", a->weight_decay,
              a->max_grad_norm);
    sb_printf(&b, "- lr_scheduler_type: %s, warmup_steps %lld, warmup_ratio %g\n- num_epochs: %d\n- seed: %llu\n",
              schedule_name(a->scheduler), (long long)a->warmup_steps, a->warmup_ratio, a->epochs, (unsigned long long)a->seed);
    sb_printf(&b, "- LoRA: r %d, alpha %g, dropout %g, target modules ", c->spec->r, c->spec->alpha, c->spec->dropout);
    if (c->spec->target_regex[0])
        sb_printf(&b, "`%s` (a regular expression)\n", c->spec->target_regex);
    else
        for (int i = 0; i < c->spec->ntargets; i++)
            sb_printf(&b, "%s`%s`%s", i ? ", " : "", c->spec->targets[i], i + 1 == c->spec->ntargets ? "\n" : "");
    sb_printf(&b, "\n## Training results\n\n| step | epoch | training loss | learning rate | eval loss | eval accuracy | eval F1 |\n");
    sb_printf(&b, "| --- | --- | --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < c->state->nlogs; i++) {
        const TrainLog *l = &c->state->logs[i];
        if (l->eval)
            sb_printf(&b, "| %lld | %.4f | | | %.4f | %.4f | %.4f |\n", (long long)l->step, l->epoch, l->eval_loss, l->eval_accuracy,
                      l->eval_f1);
        else
            sb_printf(&b, "| %lld | %.4f | %.4f | %.3g | | | |\n", (long long)l->step, l->epoch, l->loss, l->learning_rate);
    }
    if (c->metrics) {
        const Metrics *m = c->metrics;
        sb_printf(&b, "\n## Evaluation on the held-out images\n\n- loss: %.4f\n- accuracy: %.4f\n- precision (`%s`): %.4f\n", m->avg_loss,
                  m->accuracy, c->label, m->precision);
        sb_printf(&b, "- recall: %.4f\n- F1: %.4f\n", m->recall, m->f1);
    }
    sb_printf(&b, "\n## Framework versions\n\n- cgrad %s (`deit_lora --version` says which kernels ran)\n", DEIT_LORA_VERSION);
    if (b.oom) {
        sb_free(&b);
        return errorf(err, errn, "model card: out of memory");
    }
    char p[FILE_PATH_BUF];
    int rc = file_write_atomic(path_join(p, sizeof p, dir, "README.md"), b.s, b.n, true, err, errn);
    sb_free(&b);
    return rc;
}
