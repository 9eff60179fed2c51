/*
 * kafka_proto.h - facts about the Kafka wire protocol the plugin needs, as
 * tables: API names, the highest version known per API, the first flexible
 * (tagged-field, compact) version per API, error code names, and which
 * header version a request or response of a given API and version uses.
 *
 * The one idea: nothing here reads bytes. These are the protocol's
 * constants (Apache Kafka clients/src/main/resources/common/message/ JSON schemas
 * and the Errors table of the protocol guide), kept apart so the decoder
 * and the plugin read like the spec.
 */
#ifndef SONDE_KAFKA_PROTO_H
#define SONDE_KAFKA_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* API keys the plugin parses beyond the header. */
enum {
	KFK_API_PRODUCE = 0,
	KFK_API_FETCH = 1,
	KFK_API_LIST_OFFSETS = 2,
	KFK_API_METADATA = 3,
	KFK_API_CONTROLLED_SHUTDOWN = 7,
	KFK_API_OFFSET_COMMIT = 8,
	KFK_API_API_VERSIONS = 18,
};

/* Highest API key in the table (keys above are unknown). */
#define KFK_API_MAX 87

/* A frame size above this is not Kafka (int32 on the wire; brokers refuse
 * requests above socket.request.max.bytes, 100 MiB by default). */
#define KFK_MAX_FRAME (1u << 30)
/* Tighter bound used only to judge whether unknown bytes start a frame. */
#define KFK_PLAUSIBLE_FRAME (128u << 20)
/* Versions newer than the table are accepted as plausible up to this far. */
#define KFK_VERSION_SLACK 3

/* Kafka limits topic names to 249 characters of [a-zA-Z0-9._-]. */
#define KFK_TOPIC_MAX 249
/* Longest client id the plugin keeps (longer ones are left out). */
#define KFK_CLIENT_ID_MAX 255

/* Name of an API key ("Produce", "Fetch", ...), NULL when unknown. */
const char *kfk_api_name(int api_key);

/* 1 when the API key is in the table and version <= its highest known
 * version plus `slack`. */
int kfk_api_version_known(int api_key, int api_version, int slack);

/* 1 when (api_key, api_version) uses the flexible encoding (compact
 * strings/arrays, tagged fields); 0 otherwise or when unknown. */
int kfk_flexible(int api_key, int api_version);

/* Request header version: 0 (ControlledShutdown v0), 1, or 2 (flexible);
 * -1 for an unknown API key. */
int kfk_request_header_version(int api_key, int api_version);

/* Response header version: 0 or 1 (flexible; never for ApiVersions, whose
 * response header stays v0 so a client can read it before negotiating). */
int kfk_response_header_version(int api_key, int api_version);

/* Name of a Kafka error code ("NOT_LEADER_OR_FOLLOWER"), NULL when the code
 * is not in the table. 0 is NONE. */
const char *kfk_error_name(int code);

/* 1 when s[0..n) is a legal topic name (1..249 of [a-zA-Z0-9._-]). */
int kfk_topic_legal(const char *s, size_t n);

#endif
