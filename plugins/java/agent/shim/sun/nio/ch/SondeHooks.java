/*
 * SondeHooks - the only class of the agent that lives in java.base: what
 * the instrumented JDK methods call (the prologues Rewriter writes).
 *
 * Compiled as part of java.base (javac --patch-module) and defined in the
 * running JVM with MethodHandles.Lookup.defineClass in this package, so
 * JDK code links to it without touching the bootstrap class path. It knows
 * nothing of the agent: it reaches it through three MethodHandles the agent
 * sets, and uses JDK types only.
 *
 * The one idea: an AROUND hook runs in place of the method and calls the
 * same method again on the same object to get its work done; the thread is
 * marked first, and the prologue of that second entry sees the mark,
 * clears it and runs the original code. So the hook sees arguments and
 * result, exceptions pass through untouched, and nothing of the agent's own
 * ever reaches the application: every call into the agent is in a catch.
 *
 * Hand-offs (version 2): a task given to another thread (an executor's
 * execute, a CompletableFuture's async step) is noted with the submitting
 * thread's context; the thread that runs it makes a context of its own,
 * linked to that one, current for the task's duration (the agent's
 * handOff, begin and end).
 *
 * Virtual threads (version 3): a virtual thread started, mounted on a
 * carrier thread, done (the agent's vthread).
 */
package sun.nio.ch;

import java.io.IOException;
import java.io.InputStream;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;

import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLException;

public final class SondeHooks {
    public static final int VERSION = 3;
    public static final int APP_READ = 1, WRAP = 2, UNWRAP = 3, CF_RUN = 4;
    /** end(): any task level, or only one a ThreadPoolExecutor began. */
    public static final int END_ANY = 0, END_POOL = 1;

    /** false: every prologue runs the original code at once. */
    public static volatile boolean on;
    /** (Object appStream, int dir, byte[] b, int off, int n) void */
    public static volatile MethodHandle socketData;
    /** (Object engine, Object lastChannel) void: before each unwrap */
    public static volatile MethodHandle engineSeen;
    /** (Object engine, int dir, ByteBuffer[] bufs, int off, int[] startPositions) void */
    public static volatile MethodHandle engineData;

    /** (Object task) void: task is handed to another thread now */
    public static volatile MethodHandle handOff;
    /** (Object task, boolean pool) boolean: the current thread starts task; true if it had a hand-off */
    public static volatile MethodHandle begin;
    /** (int which) void: the task begun last on this thread ended */
    public static volatile MethodHandle end;

    public static final int VT_START = 1, VT_MOUNT = 2, VT_DONE = 3;
    /** (int op, Object virtualThread) void: VT_START on the starting thread,
     *  VT_MOUNT on the carrier before it runs the virtual thread, VT_DONE when it terminated */
    public static volatile MethodHandle vthread;

    /** Per thread: {int[] {id passed through}, the socket channel it read last}. */
    private static final ThreadLocal<Object[]> TL = new ThreadLocal<>();

    private SondeHooks() {
    }

    private static Object[] state() {
        Object[] s = TL.get();
        if (s == null) {
            s = new Object[] {new int[1], null};
            TL.set(s);
        }
        return s;
    }

    /** AROUND prologue: true to run the hook, false to run the original code. */
    public static boolean enter(int id) {
        try {
            if (!on)
                return false;
            int[] through = (int[]) state()[0];
            if (through[0] == id) {
                through[0] = 0;
                return false;
            }
            return true;
        } catch (Throwable e) {
            return false;
        }
    }

    /** Marks the thread for the call through; null (and every hook off) if even that fails. */
    private static int[] through(int id) {
        try {
            int[] t = (int[]) state()[0];
            t[0] = id;
            return t;
        } catch (Throwable e) {
            on = false;
            return null;
        }
    }

    /** SSLSocketImpl$AppInputStream.read(byte[], int, int): plaintext the application got. */
    public static int appRead(Object in, byte[] b, int off, int len) throws IOException {
        int[] t = through(APP_READ);
        int n;
        try {
            n = ((InputStream) in).read(b, off, len);
        } finally {
            if (t != null)
                t[0] = 0;
        }
        MethodHandle h = socketData;
        if (n > 0 && t != null && h != null) {
            try {
                h.invokeExact(in, 0, b, off, n);
            } catch (Throwable e) {
                // the agent's problem, never the application's
            }
        }
        return n;
    }

    /** SSLSocketImpl$AppOutputStream.write(byte[], int, int), before it runs. */
    public static void appWrite(Object out, byte[] b, int off, int len) {
        MethodHandle h = socketData;
        if (!on || h == null || b == null || off < 0 || len <= 0 || off > b.length - len)
            return;
        try {
            h.invokeExact(out, 1, b, off, len);
        } catch (Throwable e) {
            // the agent's problem
        }
    }

    private static int[] positions(ByteBuffer[] bufs, int off, int len) {
        try {
            if (bufs == null || off < 0 || len < 0 || off > bufs.length - len)
                return null;
            int[] at = new int[len];
            for (int i = 0; i < len; i++)
                at[i] = bufs[off + i].position();
            return at;
        } catch (Throwable e) {
            return null;
        }
    }

    private static void engineData(Object e, int dir, ByteBuffer[] bufs, int off, int[] at) {
        MethodHandle h = engineData;
        if (h == null)
            return;
        try {
            h.invokeExact(e, dir, bufs, off, at);
        } catch (Throwable x) {
            // the agent's problem
        }
    }

    /** SSLEngineImpl.wrap(ByteBuffer[], int, int, ByteBuffer): plaintext consumed. */
    public static SSLEngineResult wrap(Object e, ByteBuffer[] srcs, int off, int len, ByteBuffer dst)
            throws SSLException {
        int[] t = through(WRAP);
        int[] at = positions(srcs, off, len);
        SSLEngineResult r;
        try {
            r = ((SSLEngine) e).wrap(srcs, off, len, dst);
        } finally {
            if (t != null)
                t[0] = 0;
        }
        if (t != null && at != null && r != null && r.bytesConsumed() > 0)
            engineData(e, 1, srcs, off, at);
        return r;
    }

    /** SSLEngineImpl.unwrap(ByteBuffer, ByteBuffer[], int, int): plaintext produced. */
    public static SSLEngineResult unwrap(Object e, ByteBuffer src, ByteBuffer[] dsts, int off, int len)
            throws SSLException {
        int[] t = through(UNWRAP);
        int[] at = positions(dsts, off, len);
        MethodHandle seen = engineSeen;
        if (t != null && seen != null) {
            try {
                Object[] s = state();
                Object ch = s[1];
                s[1] = null;
                seen.invokeExact(e, ch);
            } catch (Throwable x) {
                // the agent's problem
            }
        }
        SSLEngineResult r;
        try {
            r = ((SSLEngine) e).unwrap(src, dsts, off, len);
        } finally {
            if (t != null)
                t[0] = 0;
        }
        if (t != null && at != null && r != null && r.bytesProduced() > 0)
            engineData(e, 0, dsts, off, at);
        return r;
    }

    /** SocketChannelImpl.read(...): which channel this thread read last. */
    public static void chanRead(Object ch) {
        if (!on)
            return;
        try {
            state()[1] = ch;
        } catch (Throwable e) {
            // only a hint
        }
    }

    /* --- hand-offs --------------------------------------------------------- */

    private static void handOff0(Object task) {
        MethodHandle h = handOff;
        if (!on || h == null || task == null)
            return;
        try {
            h.invokeExact(task);
        } catch (Throwable e) {
            // the agent's problem
        }
    }

    private static boolean begin0(Object task, boolean pool) {
        MethodHandle h = begin;
        if (!on || h == null || task == null)
            return false;
        try {
            return (boolean) h.invokeExact(task, pool);
        } catch (Throwable e) {
            return false;
        }
    }

    private static void end0(int which) {
        MethodHandle h = end;
        if (h == null)
            return;
        try {
            h.invokeExact(which);
        } catch (Throwable e) {
            // the agent's problem
        }
    }

    /** ThreadPoolExecutor.execute(Runnable), before it runs. */
    public static void poolExecute(Object pool, Runnable task) {
        handOff0(task);
    }

    /** ThreadPoolExecutor.beforeExecute(Thread, Runnable): the worker starts task. */
    public static void poolBefore(Object pool, Thread t, Runnable task) {
        if (!on)
            return;
        end0(END_POOL);
        begin0(task, true);
    }

    /** ThreadPoolExecutor.getTask(), processWorkerExit(...): the worker's task ended. */
    public static void poolIdle(Object pool) {
        end0(END_POOL);
    }

    /** ForkJoinPool.execute(Runnable), CompletableFuture$ThreadPerTaskExecutor.execute(Runnable):
     *  a CompletableFuture's async step handed off. */
    public static void asyncExecute(Object executor, Runnable task) {
        if (task instanceof java.util.concurrent.CompletableFuture.AsynchronousCompletionTask)
            handOff0(task);
    }

    /** CompletableFuture$AsyncSupply.run(), $AsyncRun.run(): the step runs here. */
    public static void asyncRun(Object task) {
        boolean begun = begin0(task, false);
        int[] t = through(CF_RUN);
        try {
            ((Runnable) task).run();
        } finally {
            if (t != null)
                t[0] = 0;
            if (begun)
                end0(END_ANY);
        }
    }

    /* --- virtual threads ---------------------------------------------------- */

    private static void vt0(int op, Object vt) {
        MethodHandle h = vthread;
        if (!on || h == null)
            return;
        try {
            h.invokeExact(op, vt);
        } catch (Throwable e) {
            // the agent's problem
        }
    }

    /** VirtualThread.start(ThreadContainer): on the thread that starts it. */
    public static void vtStart(Object vt) {
        vt0(VT_START, vt);
    }

    /** VirtualThread.mount(): on the carrier, before Thread.currentThread() becomes vt. */
    public static void vtMount(Object vt) {
        vt0(VT_MOUNT, vt);
    }

    /** VirtualThread.afterDone(boolean): it terminated. */
    public static void vtDone(Object vt) {
        vt0(VT_DONE, vt);
    }
}
