/*
 * values.h - inside the config module only: the value checks and small
 * containers that the YAML walker (yaml.c), the environment (env.c) and the
 * command line (flags.c) share.
 *
 * The one idea: a check never knows where its value came from. It writes a
 * reason ("why") and each front end puts its own "FILE:LINE:", variable name
 * or flag in front, so one value is judged the same way everywhere.
 */
#ifndef SONDE_CONFIG_VALUES_H
#define SONDE_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define CFG_MAX_FILE     (16u << 20) /* a bigger file is not a config */
#define CFG_MAX_DEPTH    64          /* the schema needs 6 levels */
#define CFG_ALIAS_BUDGET 100000      /* node visits aliases may add */
#define CFG_PAYLOAD_MIN  64
#define CFG_PAYLOAD_MAX  16384
#define CFG_RINGBUF_MIN  4096
#define CFG_RINGBUF_MAX  (1u << 30)
#define CFG_PID_MAX      4194304     /* PID_MAX_LIMIT on 64-bit Linux */
#define CFG_QUEUE_MAX    1048576
#define CFG_MAX_HEADERS  256
#define CFG_REGEX_MAX    1024        /* exe_path length */
#define CFG_REGEX_REPEAT 10000       /* product of all {n,m} bounds */
#define WHY              320         /* size of a reason buffer */
#define QLEN             80          /* size of a quoted value in messages */
#define PATHLEN          160


struct name_val {
	const char *name;
	int val;
};

extern const struct name_val cfg_print_modes[];
extern const struct name_val cfg_otlp_protos[];
extern const struct name_val cfg_temporalities[];
extern const struct name_val cfg_compressions[];

const char *cfg_quote(char *buf, const char *s, size_t len, char q);
const char *cfg_qs(char *buf, const char *s);
const char *cfg_sep_for(const char *why);
void *cfg_reserve(void *arr, size_t n, size_t extra, size_t size);
void *cfg_grow(void *arr, size_t n, size_t size);
int cfg_str_push(char ***arr, size_t *n, const char *s, size_t len);
void cfg_strv_free(char **v, size_t n);
int cfg_str_set(char **dst, const char *s);
void cfg_kv_clear_values(struct kv *kv);
void cfg_kv_free(struct kv *a, size_t n);
size_t cfg_kv_index(const struct kv *a, size_t n, const char *key, bool icase);
struct kv *cfg_kv_get(struct kv **a, size_t *n, size_t known, const char *key, bool icase);
int cfg_kv_set1(struct kv **a, size_t *n, size_t known, const char *key, const char *val,
		   bool icase);
void cfg_settings_free(struct plugin_settings *a, size_t n);
size_t cfg_settings_index(const struct plugin_settings *a, size_t n, const char *plugin);
struct plugin_settings *cfg_settings_get(struct plugin_settings **a, size_t *n, size_t known,
					    const char *plugin);
void cfg_service_free(struct service_cfg *s);
bool cfg_valid_name(const char *s);
bool cfg_valid_header_name(const char *s);
bool cfg_valid_header_value(const char *s);
int cfg_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
		      size_t wn);
int cfg_parse_duration(const char *s, uint32_t *ms, char *why, size_t wn);
int cfg_parse_enum(const char *s, const struct name_val *t, bool icase, int *out, char *why,
		      size_t wn);
int cfg_parse_protocol(const char *s, int *out, char *why, size_t wn);
int cfg_check_url(const char *s, char *why, size_t wn);
int cfg_check_regex(const char *s, char *why, size_t wn);
int cfg_parse_ports(const char *s, struct port_range **out, size_t *n, char *why, size_t wn);
char *cfg_pct_decode(const char *s, size_t len, char *why, size_t wn);
void cfg_trim(const char **s, size_t *len);
int cfg_parse_pairs(const char *s, struct kv **arr, size_t *n, bool headers, char *why,
		       size_t wn);

#endif
