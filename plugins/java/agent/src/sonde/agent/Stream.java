/*
 * Stream - what the agent keeps per TLS stream (an SSLSocketImpl or an
 * SSLEngineImpl): an id, the socket fd under it, and the plaintext position
 * of each direction.
 *
 * The one idea: the map holds its keys weakly, so a stream lives as long as
 * the socket or engine it describes; 16 shards keep threads of different
 * connections off each other's lock.
 */
package sonde.agent;

import java.util.WeakHashMap;

final class Stream {
    static final int UNTRIED = -1; // fd not looked for yet
    static final int UNKNOWN = -2; // looked for, not found

    final long id;
    volatile int fd = UNTRIED;
    int misses; // engines: channels read before an unwrap that were not this engine's
    final long[] pos = new long[2];

    private Stream(long id) {
        this.id = id;
    }

    private static final Object idLock = new Object();
    private static long nextId = 1;

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static final WeakHashMap<Object, Stream>[] shards = new WeakHashMap[16];

    static {
        for (int i = 0; i < shards.length; i++)
            shards[i] = new WeakHashMap<>();
    }

    static Stream of(Object key) {
        WeakHashMap<Object, Stream> m = shards[System.identityHashCode(key) & 15];
        synchronized (m) {
            Stream s = m.get(key);
            if (s == null) {
                long id;
                synchronized (idLock) {
                    id = nextId++;
                }
                s = new Stream(id);
                m.put(key, s);
            }
            return s;
        }
    }
}
