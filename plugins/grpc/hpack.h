/*
 * hpack.h - HPACK header-block decoding (RFC 7541) for a passive observer,
 * on top of libnghttp2's inflater.
 *
 * The one idea: an observer may not know the dynamic table (it joined an
 * open connection, or bytes were lost), so before nghttp2 sees a
 * representation this layer checks which table entry it refers to. A
 * reference to an entry older than what the decoder has seen since it last
 * lost track is rewritten into a literal that nghttp2 can decode without
 * the entry, and the field is reported as unknown instead of being
 * attributed to whatever a stale table would hold. Entries inserted after
 * the loss are exact, because both tables evict oldest-first.
 *
 * Reasoning, so it can be checked:
 *  - After hpack_dec_reset the real table holds E_old (unknown) followed by
 *    whatever is inserted later; ours holds only the later insertions. Both
 *    tables are suffixes of one insertion history (eviction only ever drops
 *    the oldest entry; an entry too big for the table empties it), so one is
 *    a newest-first prefix of the other, and dynamic index i means the same
 *    insertion in both whenever both have an entry i. If ours has fewer
 *    entries than i, the entry is unknown: we say so. If ours has more, a
 *    conforming encoder never refers to the extra ones.
 *  - That holds as long as our table never evicts an entry the real one
 *    keeps: after a reset our maximum size is set to the largest size the
 *    decoder accepts (a table size update at the head of a synthetic block),
 *    so it is never smaller than the real maximum; every later size update
 *    is the encoder's own and applies to both tables alike.
 *  - An inserted entry whose name is unknown (a literal with incremental
 *    indexing whose name refers to an unknown entry) still has to be
 *    inserted, or every later index would be off by one. Its name is
 *    inserted empty, so our entry is never larger than the real one (our
 *    table then evicts no earlier), and the entry is marked tainted: later
 *    references to it are reported unknown too.
 *  - A header block cut short (its end not captured) is decoded up to its
 *    last complete representation; then the table is lost (reset).
 *
 * Memory: nghttp2 holds at most the table size the encoder asked for
 * (bounded by HPACK_TABLE_MAX); the taint ring holds one bit per possible
 * entry and exists only after a reset.
 */
#ifndef SONDE_HPACK_H
#define SONDE_HPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HPACK_TABLE_DEFAULT 4096u     /* SETTINGS_HEADER_TABLE_SIZE default */
#define HPACK_TABLE_ACCEPT 65536u     /* table size accepted without SETTINGS */
#define HPACK_TABLE_MAX (1u << 20)    /* never more, whatever SETTINGS say */

struct hpack_dec;

/* One decoded field; name and value are valid during the callback only.
 * pos is the field's position in the block, counting the unknown ones. */
typedef void (*hpack_field_cb)(void *ctx, unsigned pos, const uint8_t *name, size_t name_len,
                               const uint8_t *value, size_t value_len);

struct hpack_result {
	unsigned fields;  /* fields given to the callback */
	unsigned unknown; /* fields that could not be attributed (not given) */
	bool cut;         /* the block's tail was missing: table reset after */
	bool error;       /* not valid HPACK: the rest was skipped, table reset */
};

/* A decoder whose table is known to be empty (a connection seen from its
 * start). NULL when out of memory. */
struct hpack_dec *hpack_dec_new(void);
void hpack_dec_free(struct hpack_dec *d);

/* The table is no longer known (joined mid-connection, bytes lost). Returns
 * 0, or -1 when out of memory (the decoder then reports every block as an
 * error until a later reset succeeds). */
int hpack_dec_reset(struct hpack_dec *d);

/* The peer decoding this direction advertised SETTINGS_HEADER_TABLE_SIZE:
 * accept table size updates up to it (only ever raised; capped). */
void hpack_dec_accept_size(struct hpack_dec *d, uint32_t settings_value);

/*
 * Decode one header block. complete = 0: only the first len bytes of the
 * block were captured; complete representations are decoded, the rest is
 * lost and the table is reset. Fields whose name and value are known are
 * given to cb in order; res tells what else happened. Returns 0, or -1 on
 * an HPACK error (res->error; the table was reset).
 */
int hpack_decode(struct hpack_dec *d, const uint8_t *blk, size_t len, int complete,
                 hpack_field_cb cb, void *ctx, struct hpack_result *res);

/* Counters for tests and logs. */
size_t hpack_dec_entries(const struct hpack_dec *d); /* dynamic entries held */
unsigned hpack_dec_resets(const struct hpack_dec *d);

#endif /* SONDE_HPACK_H */
