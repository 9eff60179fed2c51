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
    public static final int VERSION = 1;
    public static final int APP_READ = 1, WRAP = 2, UNWRAP = 3;

    /** false: every prologue runs the original code at once. */
    public static volatile boolean on;
    /** (Object appStream, int dir, byte[] b, int off, int n) void */
    public static volatile MethodHandle socketData;
    /** (Object engine, Object lastChannel) void: before each unwrap */
    public static volatile MethodHandle engineSeen;
    /** (Object engine, int dir, ByteBuffer[] bufs, int off, int[] startPositions) void */
    public static volatile MethodHandle engineData;

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
}
