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
 *
 * Virtual threads: a virtual thread's key is JAVA_KEY_VT | its thread id,
 * linked when it starts to the key of the thread that started it (VSTART;
 * VEND when it is done). It runs on carrier threads and moves between them
 * at every blocking call, far too often for a message each time: every
 * carrier gets an 8-byte key word, registered once (SLOT: the kernel then
 * reads the carrier's context from that word, SDK 1.2 SONDE_CTX_INDIRECT),
 * and VirtualThread.mount writes the key of the virtual thread it mounts
 * into its carrier's word. A virtual thread takes no task keys of its own
 * (BEGIN would replace its carrier's word in the kernel): a task it runs
 * belongs to it.
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
    static final long KEY_VT = 0x4a56000000000000L;
    static final int KIND_BEGIN = 5, KIND_END = 6, KIND_SLOT = 7, KIND_VSTART = 8, KIND_VEND = 9;
    static final int VT_START = 1, VT_MOUNT = 2, VT_DONE = 3; // SondeHooks
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
        boolean virtual;
        ByteBuffer slot;  // a carrier's key word (registered with SLOT)
        boolean noSlot;   // its address could not be had: never again
    }

    static final ThreadLocal<State> STATE = ThreadLocal.withInitial(State::new);
    static final ConcurrentHashMap<Id, Long> PENDING = new ConcurrentHashMap<>();
    static final AtomicLong SEQ = new AtomicLong();
    static final ThreadLocal<ByteBuffer> OUT =
            ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(Core.HDR).order(ByteOrder.LITTLE_ENDIAN));
    static MethodHandle isVirtual; // Thread.isVirtual() (JDK 21+), or null
    /** Virtual threads that were linked (VSTART sent), by key: VEND for those only. */
    static final ConcurrentHashMap<Long, Boolean> LINKED = new ConcurrentHashMap<>();
    static MethodHandle address; // sun.nio.ch.DirectBuffer.address(): (Object) long, or null

    private Handoff() {
    }

    static void init() {
        try {
            isVirtual = MethodHandles.publicLookup().findVirtual(Thread.class, "isVirtual",
                    MethodType.methodType(boolean.class));
        } catch (Throwable e) {
            isVirtual = null; // before JDK 21: no virtual threads
        }
        try {
            java.lang.reflect.Method m = Class.forName("sun.nio.ch.DirectBuffer").getMethod("address");
            m.setAccessible(true); // java.base opens sun.nio.ch to the agent (Core.openJavaBase)
            address = MethodHandles.lookup().unreflect(m)
                    .asType(MethodType.methodType(long.class, Object.class));
        } catch (Throwable e) {
            address = null; // virtual threads not followed
        }
        PENDING.clear();
        LINKED.clear();
    }

    static long vtKey(Thread t) {
        @SuppressWarnings("deprecation")
        long id = t.getId();
        return KEY_VT | (id & 0x0000ffffffffffffL);
    }

    /** This platform thread's key (its tid, from /proc/thread-self, "PID/task/TID"),
     *  a virtual thread's (its id); -1 unknown. */
    private static long ownKey(State s) {
        try {
            Thread t = Thread.currentThread();
            if (isVirtual != null && (boolean) isVirtual.invokeExact(t)) {
                s.virtual = true;
                return vtKey(t);
            }
            String p = Files.readSymbolicLink(Paths.get("/proc/thread-self")).toString();
            long tid = Long.parseLong(p.substring(p.lastIndexOf('/') + 1));
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
            s.own = ownKey(s);
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
            if (s.own == 0)
                s.own = ownKey(s);
            if (s.virtual)
                return false; // runs under the virtual thread's own key
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

    /** SondeHooks.vthread: a virtual thread started, mounted, done. */
    static void vthread(int op, Object o) {
        try {
            if (!Core.helloSent || !(o instanceof Thread))
                return;
            Thread vt = (Thread) o;
            if (op == VT_MOUNT)
                mount(vt);
            else if (op == VT_START)
                started(vt);
            else if (op == VT_DONE && LINKED.remove(vtKey(vt)) != null)
                send(KIND_VEND, vtKey(vt), 0);
        } catch (Throwable e) {
            Core.fault(e);
        }
    }

    /** On the thread that starts vt: link its key to this thread's current one. */
    private static void started(Thread vt) {
        long parent = current(STATE.get());
        if (parent == 0)
            return;
        long key = vtKey(vt);
        if (LINKED.size() >= PENDING_MAX)
            LINKED.clear(); // never done (their VEND is lost): forget them rather than grow
        LINKED.put(key, Boolean.TRUE);
        send(KIND_VSTART, key, parent);
    }

    /** On the carrier, before vt runs on it: vt's key into the carrier's word. */
    private static void mount(Thread vt) throws Throwable {
        State s = STATE.get(); // the carrier's: currentThread() is still the carrier here
        ByteBuffer w = s.slot;
        if (w != null) {
            w.putLong(0, vtKey(vt));
            return;
        }
        if (s.noSlot || address == null)
            return;
        w = ByteBuffer.allocateDirect(8).order(ByteOrder.LITTLE_ENDIAN);
        long at = (long) address.invokeExact((Object) w);
        if (at == 0 || (at & 7) != 0 || at >= (1L << 47)) {
            s.noSlot = true;
            return;
        }
        w.putLong(0, vtKey(vt));
        s.slot = w; // kept for the carrier's life: the kernel reads it
        send(KIND_SLOT, at, 0);
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
