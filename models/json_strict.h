// json_strict.h: what cJSON lets through that Python's json reads differently (every file read
// from outside is also parsed with cJSON_ParseWithOpts(text, NULL, 1): anything after the value
// but whitespace is refused, as json.loads refuses it). cJSON keeps the
// first of two equal keys in an object, Python's json the last, so one file would make two
// different models: every JSON file read from outside is checked for repeated keys.
#ifndef CGRAD_JSON_STRICT_H
#define CGRAD_JSON_STRICT_H

#include <cjson/cJSON.h>
#include <stddef.h>

// a key that occurs twice in one object anywhere in the tree, or NULL; O(n log n)
const char *json_repeated_key(const cJSON *root);

// 0, or -1 with "PATH: key 'K' appears twice in one object" in err
int json_check_unique_keys(const cJSON *root, const char *path, char *err, size_t errn);

#endif
