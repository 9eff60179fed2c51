/*
 * Handoff - request contexts across threads: which context each thread
 * runs, what a handed-off task belongs to, and the BEGIN / END messages
 * that tell sonde (the kernel keeps the thread's key in sonde_thread_ctx,
 * the plugin links the keys in the host).
 *
 * The one idea: a thread's context is a key. Its own key is
 * JAVA_KEY_THREAD | its Linux tid (the kernel gives every thread of the JVM
 * that key when it is created); a task handed to another thread is noted,
 * at submission, with the submitting thread's current key (a map by
 * identity, no message); the thread that runs it makes a fresh key
 * (JAVA_KEY_TASK | n) current, says BEGIN(key, submitter's key), and END
 * (key, the key it goes back to) when the task is done. Two messages per
 * hand-off that runs; nothing for tasks that were not handed off while the
 * agent was on. Nesting (a task that runs a handed-off step itself) keeps a
 * small stack per thread.
 */
package sonde.agent;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

final class Handoff {
    static final long KEY_THREAD = 0x4a54000000000000L, KEY_TASK = 0x4a4b000000000000L;
    static final int KIND_BEGIN = 5, KIND_END = 6;
    static final int DEPTH = 8;
    /** Hand-offs noted and not run yet, at most (tasks rejected, removed, never run). */
    static final int PENDING_MAX = 65536;

    /** A task by identity (a Runnable's own equals is not ours to call). */
    static final class Id {
        final Object o;
        final int h;

        Id(Object o) {
            this.o = o;
            this.h = System.identityHashCode(o);
        }

        @Override
        public int hashCode() {
            return h;
        }

        @Override
        public boolean equals(Object x) {
            return x instanceof Id && ((Id) x).o == o;
        }
    }

    /** Per thread: its own key (0 not known yet, -1 none: a virtual thread),
     *  the keys of the tasks it runs, innermost last, and which of them a
     *  pool began (bit per level). */
    static final class State {
        long own;
        final long[] keys = new long[DEPTH];
        int depth;
        int poolBits;
        int overflow; // levels begun beyond DEPTH (not tracked, not messaged)
    }

    static final ThreadLocal<State> STATE = ThreadLocal.withInitial(State::new);
    static final ConcurrentHashMap<Id, Long> PENDING = new ConcurrentHashMap<>();
    static final AtomicLong SEQ = new AtomicLong();
    static final ThreadLocal<ByteBuffer> OUT =
            ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(Core.HDR).order(ByteOrder.LITTLE_ENDIAN));
    static MethodHandle isVirtual; // Thread.isVirtual() (JDK 21+), or null

    private Handoff() {
    }

    static void init() {
        try {
            isVirtual = MethodHandles.publicLookup().findVirtual(Thread.class, "isVirtual",
                    MethodType.methodType(boolean.class));
        } catch (Throwable e) {
            isVirtual = null; // before JDK 21: no virtual threads
        }
        PENDING.clear();
    }

    /** This platform thread's tid, from /proc/thread-self ("PID/task/TID"); 0 unknown. */
    private static long ownKey() {
        try {
            if (isVirtual != null && (boolean) isVirtual.invokeExact(Thread.currentThread()))
                return -1; // its carrier changes: it has no key of its own here
            String s = Files.readSymbolicLink(Paths.get("/proc/thread-self")).toString();
            long tid = Long.parseLong(s.substring(s.lastIndexOf('/') + 1));
            return tid > 0 && tid <= 0x7fffffffL ? KEY_THREAD | tid : -1;
        } catch (Throwable e) {
            return -1;
        }
    }

    /** The current thread's key, 0 when not known. */
    static long current(State s) {
        if (s.depth > 0)
            return s.keys[s.depth - 1];
        if (s.own == 0)
            s.own = ownKey();
        return s.own > 0 ? s.own : 0;
    }

    /** SondeHooks.handOff: task goes to another thread. */
    static void handOff(Object task) {
        try {
            if (Core.cur == null)
                return;
            if (PENDING.size() >= PENDING_MAX)
                PENDING.clear(); // tasks that never ran: forget them rather than grow
            PENDING.put(new Id(task), current(STATE.get()));
        } catch (Throwable e) {
            Core.fault(e);
        }
    }

    /** SondeHooks.begin: this thread starts task; true when it was handed off. */
    static boolean begin(Object task, boolean pool) {
        try {
            Long parent = PENDING.remove(new Id(task));
            if (parent == null || Core.cur == null)
                return false;
            State s = STATE.get();
            if (s.depth == DEPTH) {
                s.overflow++;
                return true;
            }
            long key = KEY_TASK | (SEQ.incrementAndGet() & 0x0000ffffffffffffL);
            s.keys[s.depth] = key;
            s.poolBits = pool ? s.poolBits | (1 << s.depth) : s.poolBits & ~(1 << s.depth);
            s.depth++;
            send(KIND_BEGIN, key, parent);
            return true;
        } catch (Throwable e) {
            Core.fault(e);
            return false;
        }
    }

    /** SondeHooks.end: the innermost task ended (which: END_POOL, only if a pool began it). */
    static void end(int which) {
        try {
            State s = STATE.get();
            if (s.overflow > 0) {
                if (which == 0)
                    s.overflow--;
                return;
            }
            if (s.depth == 0)
                return;
            int top = s.depth - 1;
            if (which == 1 && (s.poolBits & (1 << top)) == 0)
                return;
            long key = s.keys[top];
            s.depth = top;
            long back = s.depth > 0 ? s.keys[s.depth - 1] : (s.own > 0 ? s.own : 0);
            if (Core.cur != null)
                send(KIND_END, key, back); // back 0: the kernel restores the thread's own key
        } catch (Throwable e) {
            Core.fault(e);
        }
    }

    private static void send(int kind, long key, long other) {
        Core.Session ss = Core.cur;
        if (ss == null)
            return;
        ByteBuffer o = OUT.get();
        o.clear();
        Core.header(o, kind, 0, -1, 0, key, other, 0, 0);
        o.flip();
        Core.write(ss, o);
    }
}
