// deit_lora.h: the commands of the deit_lora program (one file each).
#ifndef DEIT_LORA_H
#define DEIT_LORA_H

#include "../models/adapter.h"
#include "../models/image_processor.h"
#include "../models/vit.h"
#include "cli.h"

#include <stdio.h>

int cmd_check(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);

// prints "deit_lora CMD: MESSAGE" and returns 2 (bad input)
int app_fail(const char *cmd, const char *msg);

#endif
