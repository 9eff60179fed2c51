/*
 * record.c - `sonde --record FILE` and `sonde --replay FILE`.
 *
 * The one idea: a recording is the ring buffer itself, written to disk. The
 * kernel's records (bpf/sonde_events.h) are stored as they arrived, each
 * behind a 4-byte length, after a header that carries the clock offset; a
 * META_PROC record per watched process carries what /proc said about it.
 * Replay pushes the same records through agent_handle_record(), so a
 * recorded capture exercises exactly the code a live one does, with no root
 * and no kernel.
 *
 * File layout (little endian, the host's):
 *   "SONDEREC" | u32 version | u32 header size | i64 mono_to_real | ...
 *   then repeated: u32 len | len bytes (a record, starting with sonde_ev_hdr)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

struct record_header {
	char magic[8];
	uint32_t version;
	uint32_t size;
	int64_t mono_to_real;
};

#define RECORD_MAX_LEN (sizeof(struct sonde_ev_data) + SONDE_MAX_PAYLOAD + 64)

int record_open(struct agent *a, const char *path, char *err, size_t errlen)
{
	struct record_header h;

	a->record = fopen(path, "we");
	if (!a->record) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, RECORD_MAGIC, 8);
	h.version = RECORD_VERSION;
	h.size = sizeof(h);
	h.mono_to_real = a->mono_to_real;
	if (fwrite(&h, sizeof(h), 1, a->record) != 1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		fclose(a->record);
		a->record = NULL;
		return -1;
	}
	return 0;
}

void record_write(struct agent *a, const void *rec, size_t len)
{
	uint32_t l = (uint32_t)len;

	if (!a->record)
		return;
	if (fwrite(&l, sizeof(l), 1, a->record) != 1 || fwrite(rec, len, 1, a->record) != 1) {
		fprintf(stderr, "sonde: recording stopped: %s\n", strerror(errno));
		fclose(a->record);
		a->record = NULL;
	}
}

void record_proc(struct agent *a, const struct proc *p)
{
	struct sonde_ev_meta_proc m;

	if (!a->record)
		return;
	memset(&m, 0, sizeof(m));
	m.h.type = SONDE_EV_META_PROC;
	m.h.tgid = p->tgid;
	snprintf(m.service, sizeof(m.service), "%s", p->res ? p->res->service_name : "");
	snprintf(m.exe_name, sizeof(m.exe_name), "%s", p->exe_name);
	memcpy(m.listen_ports, p->listen_ports, sizeof(m.listen_ports));
	m.n_listen = p->n_listen;
	record_write(a, &m, sizeof(m));
}

/* In a replay, META_PROC creates the process as it was when recorded. */
static void replay_proc(struct agent *a, const struct sonde_ev_meta_proc *m)
{
	struct proc *p = hmap_get(&a->procs, m->h.tgid);

	if (p)
		proc_forget(a, m->h.tgid);
	char svc[sizeof(m->service) + 1], exe[sizeof(m->exe_name) + 1];
	memcpy(svc, m->service, sizeof(m->service));
	svc[sizeof(m->service)] = 0;
	memcpy(exe, m->exe_name, sizeof(m->exe_name));
	exe[sizeof(m->exe_name)] = 0;
	p = proc_get(a, m->h.tgid);
	if (!p)
		return;
	/* proc_get made a placeholder; give it the recorded identity. */
	snprintf(p->exe_name, sizeof(p->exe_name), "%.63s", exe);
	/* The recorded name, unless the replay's config names the service. */
	bool named = a->cfg->service_name || (p->svc && p->svc->cfg->name);
	if (!named && svc[0] && p->res) {
		char *n = strdup(svc);
		if (n) {
			free(p->res->service_name);
			p->res->service_name = n;
			attr_set_str(&p->res->attrs, "service.name", n, strlen(n));
		}
	}
	if (p->res)
		attr_set_str(&p->res->attrs, "process.executable.name", exe, strlen(exe));
	p->n_listen = m->n_listen < 32 ? m->n_listen : 32;
	memcpy(p->listen_ports, m->listen_ports, sizeof(p->listen_ports));
}

int replay_run(struct agent *a, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	struct record_header h;
	uint8_t *buf = NULL;
	uint32_t len;
	long n = 0;
	int ret = -1;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fread(&h, sizeof(h), 1, f) != 1 || memcmp(h.magic, RECORD_MAGIC, 8)) {
		snprintf(err, errlen, "%s: not a sonde recording (bad magic)", path);
		goto out;
	}
	if (h.version != RECORD_VERSION || h.size < sizeof(h)) {
		snprintf(err, errlen, "%s: recording version %u, this sonde reads %u", path,
		         h.version, RECORD_VERSION);
		goto out;
	}
	if (h.size > sizeof(h) && fseek(f, h.size, SEEK_SET)) {
		snprintf(err, errlen, "%s: truncated header", path);
		goto out;
	}
	a->mono_to_real = h.mono_to_real;
	a->replay = true;
	buf = malloc(RECORD_MAX_LEN);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (fread(&len, sizeof(len), 1, f) == 1) {
		n++;
		if (len < sizeof(struct sonde_ev_hdr) || len > RECORD_MAX_LEN) {
			snprintf(err, errlen, "%s: record %ld has a bad length %u", path, n, len);
			goto out;
		}
		if (fread(buf, len, 1, f) != 1) {
			snprintf(err, errlen, "%s: record %ld is truncated", path, n);
			goto out;
		}
		const struct sonde_ev_hdr *hdr = (const void *)buf;
		if (hdr->type == SONDE_EV_META_PROC) {
			if (len >= sizeof(struct sonde_ev_meta_proc))
				replay_proc(a, (const void *)buf);
			continue;
		}
		agent_handle_record(a, buf, len);
	}
	ret = 0;
out:
	free(buf);
	fclose(f);
	return ret;
}
