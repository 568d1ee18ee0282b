// vit_targets.h: which of the ViT's linears a LoRA spec names (internal to models/). peft's two
// forms: a list of module names (a module matches when its name is the target or ends with "." +
// target), or one string, a regular expression that must match a module's whole name, as Python's
// re.fullmatch. The expression runs on PCRE2, which speaks Python's syntax ((?:...), \b, \d, lazy
// quantifiers, lookarounds, backreferences), with limits on matching steps, depth and heap, so no
// pattern takes unbounded time or memory. Module names are matched in both transformers 4's and
// transformers 5's spellings.
#ifndef CGRAD_VIT_TARGETS_H
#define CGRAD_VIT_TARGETS_H

#include <stdbool.h>
#include <stddef.h>

bool vit_target_matches(const char *module_v4, const char *target);

typedef struct VitTargetRe VitTargetRe;
// NULL with "target_modules regex 'P': why" in err
VitTargetRe *vit_target_re_compile(const char *pattern, char *err, size_t errn);
// 1 the module's name (or its transformers-5 name) matches in full, 0 not, -1 a limit was hit
// (the message names the pattern and the limit)
int vit_target_re_match(const VitTargetRe *re, const char *module_v4, char *err, size_t errn);
void vit_target_re_free(VitTargetRe *re);

#endif
