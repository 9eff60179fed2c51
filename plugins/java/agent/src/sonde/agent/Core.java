/*
 * Core - the agent's life (start, stop) and its one way out: messages
 * written with pwrite(2) to /dev/null at a secret offset, which the sonde
 * plugin's uprobe on the C library's pwrite64 copies into its ring buffer.
 *
 * The one idea: the JVM never talks to sonde. The plugin gives the offset
 * (token) and a lock file when it loads the agent; the agent writes, and
 * blocks one daemon thread on a shared lock of that file. sonde holds the
 * exclusive lock as long as it wants the agent: when it lets go (it
 * detached, or it died), the thread gets the lock and the agent removes
 * its transformer and gives the JDK classes their original code back.
 *
 * The instrumented JDK code calls sun.nio.ch.SondeHooks (agent/shim), a
 * class this agent defines inside java.base, which calls back here through
 * MethodHandles: the bootstrap class path is never touched (appending to
 * it makes HotSpot print a warning and stop sharing application classes).
 *
 * A message (little-endian; java_msg.h on the C side is the reference):
 *   0 u32 magic "SVJ1"   4 u16 header length (40)   6 u8 kind   7 u8 dir
 *   8 s32 socket fd (-1 unknown)   12 u32 bytes the call moved
 *  16 u64 stream id   24 u64 position (bytes of this stream and direction
 *  before)   32 u32 flags   36 u32 payload bytes that follow (<= cap)
 */
package sonde.agent;

import java.io.FileDescriptor;
import java.io.InputStream;
import java.lang.instrument.Instrumentation;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

import javax.net.ssl.SSLEngine;

public final class Core {
    static final String PROTOCOL = "1";
    static final int MAGIC = 0x314a5653; // "SVJ1"
    static final int HDR = 40;
    static final int MAX_CAP = 16384;
    static final int KIND_DATA = 1, KIND_HELLO = 2, KIND_NOTE = 3, KIND_FAIL = 4;
    static final int F_ENGINE = 1;

    /** What one attach set up; replaced by the next attach, ended by stop. */
    static final class Session {
        final long token;
        final int cap;
        final FileChannel lock;
        volatile FileChannel sink;
        final String sinkPath; // tests: append to this file instead of /dev/null
        final boolean uninterruptible;

        Session(long token, int cap, FileChannel lock, FileChannel sink, String sinkPath,
                boolean uninterruptible) {
            this.token = token;
            this.cap = cap;
            this.lock = lock;
            this.sink = sink;
            this.sinkPath = sinkPath;
            this.uninterruptible = uninterruptible;
        }
    }

    /** Waits for sonde to let go of the lock file, then stops the session. */
    static final class Watcher extends Thread {
        private final Session s;

        Watcher(Session s) {
            super("sonde-java-agent");
            setDaemon(true);
            this.s = s;
        }

        @Override
        public void run() {
            try {
                s.lock.lock(0, Long.MAX_VALUE, true);
            } catch (Throwable e) {
                // closed by a newer session, or the file cannot be locked: stop
            }
            Core.stop(s);
        }
    }

    static final String SHIM = "sun.nio.ch.SondeHooks";
    static final int SHIM_VERSION = 3, APP_READ = 1, WRAP = 2, UNWRAP = 3, CF_RUN = 4;
    static final String TPE = "java/util/concurrent/ThreadPoolExecutor";
    static final String CF = "java/util/concurrent/CompletableFuture";
    static final String VT = "java/lang/VirtualThread";

    static final Rewriter.Target[] TARGETS = {
        new Rewriter.Target("sun/security/ssl/SSLSocketImpl$AppInputStream", "read", "([BII)I",
                "appRead", "(Ljava/lang/Object;[BII)I", APP_READ, true, true),
        new Rewriter.Target("sun/security/ssl/SSLSocketImpl$AppOutputStream", "write", "([BII)V",
                "appWrite", "(Ljava/lang/Object;[BII)V", 0, false, true),
        new Rewriter.Target("sun/security/ssl/SSLEngineImpl", "wrap",
                "([Ljava/nio/ByteBuffer;IILjava/nio/ByteBuffer;)Ljavax/net/ssl/SSLEngineResult;", "wrap",
                "(Ljava/lang/Object;[Ljava/nio/ByteBuffer;IILjava/nio/ByteBuffer;)Ljavax/net/ssl/SSLEngineResult;",
                WRAP, true, true),
        new Rewriter.Target("sun/security/ssl/SSLEngineImpl", "unwrap",
                "(Ljava/nio/ByteBuffer;[Ljava/nio/ByteBuffer;II)Ljavax/net/ssl/SSLEngineResult;", "unwrap",
                "(Ljava/lang/Object;Ljava/nio/ByteBuffer;[Ljava/nio/ByteBuffer;II)Ljavax/net/ssl/SSLEngineResult;",
                UNWRAP, true, true),
        new Rewriter.Target("sun/nio/ch/SocketChannelImpl", "read", "(Ljava/nio/ByteBuffer;)I",
                "chanRead", "(Ljava/lang/Object;)V", 0, false, false),
        new Rewriter.Target("sun/nio/ch/SocketChannelImpl", "read", "([Ljava/nio/ByteBuffer;II)J",
                "chanRead", "(Ljava/lang/Object;)V", 0, false, false),
        // hand-offs (Handoff.java)
        new Rewriter.Target(TPE, "execute", "(Ljava/lang/Runnable;)V",
                "poolExecute", "(Ljava/lang/Object;Ljava/lang/Runnable;)V", 0, false, true),
        new Rewriter.Target(TPE, "beforeExecute", "(Ljava/lang/Thread;Ljava/lang/Runnable;)V",
                "poolBefore", "(Ljava/lang/Object;Ljava/lang/Thread;Ljava/lang/Runnable;)V", 0, false, true),
        new Rewriter.Target(TPE, "getTask", "()Ljava/lang/Runnable;",
                "poolIdle", "(Ljava/lang/Object;)V", 0, false, false),
        new Rewriter.Target(TPE, "processWorkerExit", "(Ljava/util/concurrent/ThreadPoolExecutor$Worker;Z)V",
                "poolIdle", "(Ljava/lang/Object;)V", 0, false, false),
        new Rewriter.Target("java/util/concurrent/ForkJoinPool", "execute", "(Ljava/lang/Runnable;)V",
                "asyncExecute", "(Ljava/lang/Object;Ljava/lang/Runnable;)V", 0, false, true),
        new Rewriter.Target(CF + "$ThreadPerTaskExecutor", "execute", "(Ljava/lang/Runnable;)V",
                "asyncExecute", "(Ljava/lang/Object;Ljava/lang/Runnable;)V", 0, false, true),
        new Rewriter.Target(CF + "$AsyncSupply", "run", "()V",
                "asyncRun", "(Ljava/lang/Object;)V", CF_RUN, true, false),
        new Rewriter.Target(CF + "$AsyncRun", "run", "()V",
                "asyncRun", "(Ljava/lang/Object;)V", CF_RUN, true, false),
        // virtual threads (JDK 21+; Handoff.java)
        new Rewriter.Target(VT, "start", "(Ljdk/internal/vm/ThreadContainer;)V",
                "vtStart", "(Ljava/lang/Object;)V", 0, false, false),
        new Rewriter.Target(VT, "mount", "()V", "vtMount", "(Ljava/lang/Object;)V", 0, false, false),
        new Rewriter.Target(VT, "afterDone", "(Z)V", "vtDone", "(Ljava/lang/Object;)V", 0, false, false),
    };
    static final String[] LABELS = {
        "SSLSocket read", "SSLSocket write", "SSLEngine wrap", "SSLEngine unwrap",
        "SocketChannel read", "SocketChannel read[]",
        "ThreadPoolExecutor execute", "ThreadPoolExecutor beforeExecute", "ThreadPoolExecutor getTask",
        "ThreadPoolExecutor processWorkerExit", "ForkJoinPool execute",
        "CompletableFuture ThreadPerTaskExecutor", "CompletableFuture AsyncSupply",
        "CompletableFuture AsyncRun",
        "VirtualThread start", "VirtualThread mount", "VirtualThread afterDone",
    };

    static final Object life = new Object();
    static volatile Session cur;
    static volatile boolean starting; // retransforming in start(): no NOTE messages
    /** HELLO written: messages that need the plugin to know the JVM (SLOT) may follow. */
    static volatile boolean helloSent;
    static Instrumentation inst;
    static Transformer tf;
    /** Per target: null (class not loaded yet), "on", or why it was left out. */
    static final String[] status = new String[TARGETS.length];

    static Class<?> shim;
    static Field shimOn;

    static final class Out extends ThreadLocal<ByteBuffer> {
        @Override
        protected ByteBuffer initialValue() {
            return ByteBuffer.allocateDirect(HDR + MAX_CAP).order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    static final Out out = new Out();

    static Field fInOuter, fOutOuter, fSelf, fImpl, fImplFd, fDelegate, fFd, fChanFd, fChanRemote;

    private Core() {
    }

    /* --- start / stop -------------------------------------------------------- */

    static Map<String, String> parse(String args) {
        Map<String, String> m = new HashMap<>();
        if (args == null)
            return m;
        for (String kv : args.split(",")) {
            int eq = kv.indexOf('=');
            if (eq > 0)
                m.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return m;
    }

    /**
     * agentmain / premain (through Agent). Never throws once it can write:
     * a failure is a FAIL message the plugin logs (an exception out of
     * agentmain would print a stack trace into the application's stderr).
     */
    public static void start(String args, Instrumentation in) throws Exception {
        Map<String, String> a = parse(args);
        debug = "1".equals(a.get("debug"));
        String sinkPath = a.get("sink");
        long token = Long.parseLong(a.getOrDefault("token", "0"));
        FileChannel sink = openSink(sinkPath);
        try {
            startChecked(a, in, sink, token, sinkPath);
        } catch (Throwable e) {
            fault(e);
            try {
                Session tmp = new Session(token, 0, null, sink, sinkPath, false);
                write(tmp, text(KIND_FAIL, "java " + System.getProperty("java.version") + ": " + e));
                sink.close();
            } catch (Throwable x) {
                fault(x);
            }
        }
    }

    private static void startChecked(Map<String, String> a, Instrumentation in, FileChannel sink, long token,
                                     String sinkPath) throws Exception {
        if (!PROTOCOL.equals(a.get("v")))
            throw new IllegalArgumentException("sonde agent protocol " + a.get("v")
                    + " asked, this agent speaks " + PROTOCOL);
        String lockPath = a.get("lock");
        if (lockPath == null)
            throw new IllegalArgumentException("no lock file given");
        synchronized (life) {
            if (cur != null)
                stopLocked(cur);
            loadAll(a.get("jar"));
            if (!in.isRetransformClassesSupported())
                throw new IllegalStateException("this JVM cannot retransform classes");
            FileChannel lock = FileChannel.open(Paths.get(lockPath), StandardOpenOption.READ);
            FileLock probe = null;
            try {
                probe = lock.tryLock(0, Long.MAX_VALUE, true);
            } catch (Throwable e) {
                lock.close();
                throw e;
            }
            if (probe != null) {
                probe.release();
                lock.close();
                throw new IllegalStateException("nobody holds " + lockPath + ": not started");
            }
            try {
                inst = in;
                openJavaBase(in);
                defineShim(shimBytes());
                findFields();
            } catch (Throwable e) {
                lock.close();
                throw e;
            }
            boolean unint = uninterruptible(sink);
            int cap = Math.max(64, Math.min(MAX_CAP, Integer.parseInt(a.getOrDefault("cap", "16384"))));
            Session s = new Session(token, cap, lock, sink, sinkPath, unint);
            Arrays.fill(status, null);
            cur = s;
            shimOn.setBoolean(null, true);
            if (tf == null)
                tf = new Transformer();
            in.addTransformer(tf, true);
            starting = true;
            String err;
            try {
                err = retransform();
            } finally {
                starting = false;
            }
            message(KIND_HELLO, hello(err));
            helloSent = true;
            new Watcher(s).start();
        }
    }

    static void stop(Session s) {
        synchronized (life) {
            if (cur == s)
                stopLocked(s);
        }
    }

    private static void stopLocked(Session s) {
        helloSent = false;
        try {
            shimOn.setBoolean(null, false);
        } catch (Throwable e) {
            // not defined: nothing was hooked
        }
        cur = null;
        try {
            inst.removeTransformer(tf);
            retransform(); // without the transformer: the original code again
        } catch (Throwable e) {
            // nothing more can be done from here
        }
        try {
            s.sink.close();
        } catch (Throwable e) {
            // closing
        }
        try {
            s.lock.close();
        } catch (Throwable e) {
            // closing
        }
    }

    /** Retransform every loaded target class; null or what failed. */
    private static String retransform() {
        Set<String> names = new HashSet<>();
        for (Rewriter.Target t : TARGETS)
            names.add(t.cls.replace('/', '.'));
        List<Class<?>> cls = new ArrayList<>();
        for (Class<?> c : inst.getAllLoadedClasses())
            if (names.contains(c.getName()) && c.getClassLoader() == null)
                cls.add(c);
        String err = null;
        for (Class<?> c : cls) {
            try {
                inst.retransformClasses(c);
            } catch (Throwable e) {
                fault(e);
                err = (err == null ? "" : err + "; ") + c.getName() + ": " + e;
            }
        }
        return err;
    }

    /** Every class of the agent's jar, loaded now: the jar file may go away. */
    private static void loadAll(String jar) throws Exception {
        if (jar == null)
            return;
        try (JarFile jf = new JarFile(jar)) {
            for (Enumeration<JarEntry> e = jf.entries(); e.hasMoreElements();) {
                String n = e.nextElement().getName();
                if (n.startsWith("sonde/agent/") && n.endsWith(".class"))
                    Class.forName(n.substring(0, n.length() - 6).replace('/', '.'), false,
                            Core.class.getClassLoader());
            }
        }
    }

    /** java.base opens the packages the agent reads (and defines the shim in) to it. */
    private static void openJavaBase(Instrumentation in) {
        Module base = Object.class.getModule(), me = Core.class.getModule();
        Map<String, Set<Module>> opens = new HashMap<>();
        for (String p : new String[] {"sun.security.ssl", "sun.nio.ch", "java.net", "java.io"})
            opens.put(p, Set.of(me));
        in.redefineModule(base, Set.of(), Map.of(), opens, Set.of(), Map.of());
    }

    private static byte[] shimBytes() throws Exception {
        try (InputStream s = Core.class.getResourceAsStream("SondeHooks.bin")) {
            if (s == null)
                throw new IllegalStateException("SondeHooks.bin missing from the agent jar");
            return s.readAllBytes();
        }
    }

    /** The shim in java.base (defined once per JVM), wired to this agent. */
    private static void defineShim(byte[] bytes) throws Exception {
        Class<?> c;
        try {
            c = Class.forName(SHIM, false, null);
        } catch (ClassNotFoundException e) {
            MethodHandles.Lookup in = MethodHandles.privateLookupIn(
                    Class.forName("sun.nio.ch.SocketChannelImpl", false, null), MethodHandles.lookup());
            c = in.defineClass(bytes);
        }
        if (c.getField("VERSION").getInt(null) != SHIM_VERSION)
            throw new IllegalStateException("an agent of another version is in this JVM: restart it to change");
        MethodHandles.Lookup me = MethodHandles.lookup();
        MethodType sd = MethodType.methodType(void.class, Object.class, int.class, byte[].class, int.class,
                int.class);
        MethodType es = MethodType.methodType(void.class, Object.class, Object.class);
        MethodType ed = MethodType.methodType(void.class, Object.class, int.class, ByteBuffer[].class, int.class,
                int[].class);
        c.getField("socketData").set(null, me.findStatic(Core.class, "socketData", sd));
        c.getField("engineSeen").set(null, me.findStatic(Core.class, "engineSeen", es));
        c.getField("engineData").set(null, me.findStatic(Core.class, "engineData", ed));
        Handoff.init();
        c.getField("handOff").set(null, me.findStatic(Handoff.class, "handOff",
                MethodType.methodType(void.class, Object.class)));
        c.getField("begin").set(null, me.findStatic(Handoff.class, "begin",
                MethodType.methodType(boolean.class, Object.class, boolean.class)));
        c.getField("end").set(null, me.findStatic(Handoff.class, "end",
                MethodType.methodType(void.class, int.class)));
        c.getField("vthread").set(null, me.findStatic(Handoff.class, "vthread",
                MethodType.methodType(void.class, int.class, Object.class)));
        shim = c;
        shimOn = c.getField("on");
    }

    private static Field field(String cls, String name) {
        try {
            Field f = Class.forName(cls, false, null).getDeclaredField(name);
            f.setAccessible(true);
            return f;
        } catch (Throwable e) {
            return null;
        }
    }

    private static void findFields() {
        fInOuter = field("sun.security.ssl.SSLSocketImpl$AppInputStream", "this$0");
        fOutOuter = field("sun.security.ssl.SSLSocketImpl$AppOutputStream", "this$0");
        fSelf = field("sun.security.ssl.BaseSSLSocketImpl", "self");
        fImpl = field("java.net.Socket", "impl");
        fImplFd = field("java.net.SocketImpl", "fd");
        fDelegate = field("java.net.DelegatingSocketImpl", "delegate"); // JDK 13+: SOCKS wrapper
        fFd = field("java.io.FileDescriptor", "fd");
        fChanFd = field("sun.nio.ch.SocketChannelImpl", "fdVal");
        fChanRemote = field("sun.nio.ch.SocketChannelImpl", "remoteAddress");
    }

    private static FileChannel openSink(String path) throws Exception {
        if (path != null)
            return FileChannel.open(Paths.get(path), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.APPEND);
        return FileChannel.open(Paths.get("/dev/null"), StandardOpenOption.WRITE);
    }

    /** A thread interrupted while writing would close an interruptible channel for all. */
    private static boolean uninterruptible(FileChannel ch) {
        try {
            Method m = ch.getClass().getMethod("setUninterruptible");
            m.setAccessible(true);
            m.invoke(ch);
            return true;
        } catch (Throwable e) {
            return false;
        }
    }

    private static String hello(String retransformErr) {
        StringBuilder sb = new StringBuilder();
        sb.append("java ").append(System.getProperty("java.version")).append(" (")
          .append(System.getProperty("java.vm.name")).append("), hooks:");
        for (int i = 0; i < TARGETS.length; i++) {
            String st = status[i];
            sb.append(i == 0 ? " " : "; ").append(LABELS[i]).append(' ')
              .append(st == null ? "when its class loads" : st);
        }
        if (fInOuter == null || fOutOuter == null || fImpl == null || fImplFd == null || fFd == null)
            sb.append("; SSLSocket fields not found: sockets unknown");
        if (fChanFd == null)
            sb.append("; SocketChannel fields not found: SSLEngine sockets unknown");
        if (retransformErr != null)
            sb.append("; retransform failed: ").append(retransformErr);
        return sb.toString();
    }

    /** The transformer changed a class: say so when it is a class loaded after the hello. */
    static void transformed(String cls, String[] done) {
        boolean atStart = starting;
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < TARGETS.length; i++) {
            if (!TARGETS[i].cls.equals(cls) || done[i] == null)
                continue;
            status[i] = done[i];
            if (!atStart)
                sb.append(sb.length() == 0 ? "class loaded: " : "; ").append(LABELS[i]).append(' ')
                  .append(done[i]);
        }
        for (int i = 0; i < TARGETS.length; i++)
            if (TARGETS[i].cls.equals(cls) && done[i] == null)
                status[i] = "method not found";
        if (sb.length() > 0)
            message(KIND_NOTE, sb.toString());
    }

    static volatile boolean debug; // agent option debug=1: faults to the JVM's stderr

    /** A step of ours failed: the plugin sees a position gap; nothing reaches the application. */
    static void fault(Throwable e) {
        if (debug) {
            try {
                System.err.println("sonde agent: " + e);
                e.printStackTrace();
            } catch (Throwable x) {
                // nothing
            }
        }
    }

    /* --- sockets ----------------------------------------------------------------- */

    /** The fd under an SSLSocketImpl (its own socket, or the one it is layered on). */
    static int socketFd(Object sock) {
        try {
            Object s = sock;
            Object self = fSelf != null ? fSelf.get(sock) : null;
            if (self instanceof Socket && self != sock)
                s = self;
            Object impl = fImpl.get(s);
            for (int i = 0; impl != null && i < 4; i++) {
                Object fdo = fImplFd.get(impl);
                if (fdo instanceof FileDescriptor)
                    return fFd.getInt(fdo);
                impl = fDelegate != null && fDelegate.getDeclaringClass().isInstance(impl)
                        ? fDelegate.get(impl) : null;
            }
            return -1;
        } catch (Throwable e) {
            return -1;
        }
    }

    /** SondeHooks: plaintext of an SSLSocket (its AppInputStream or AppOutputStream). */
    static void socketData(Object stream, int dir, byte[] b, int off, int n) {
        try {
            Object sock = (dir == 0 ? fInOuter : fOutOuter).get(stream);
            Stream s = Stream.of(sock);
            if (s.fd < 0)
                s.fd = socketFd(sock);
            send(s, dir, 0, b, off, n, null, 0, null);
        } catch (Throwable e) {
            fault(e);
        }
    }

    /* --- engines ------------------------------------------------------------------------ */

    /**
     * Before each unwrap of an engine whose socket is not known yet: its
     * socket is the channel this thread read last (the ciphertext it is
     * about to unwrap), if that channel's peer port is the engine's (when
     * the engine knows one). No channel read on this thread since the last
     * unwrap (the read came before the agent did): ask again at the next
     * unwrap. A peer port that disagrees: ask again, a few times, then the
     * socket stays unknown; nothing is guessed.
     */
    static void engineSeen(Object engine, Object ch) {
        try {
            Stream s = Stream.of(engine);
            if (s.fd != Stream.UNTRIED || ch == null || fChanFd == null)
                return;
            int peer = ((SSLEngine) engine).getPeerPort();
            Object ra = fChanRemote != null ? fChanRemote.get(ch) : null;
            int rport = ra instanceof InetSocketAddress ? ((InetSocketAddress) ra).getPort() : -1;
            if (peer <= 0 || peer == rport)
                s.fd = fChanFd.getInt(ch);
            else if (++s.misses >= 8)
                s.fd = Stream.UNKNOWN;
        } catch (Throwable e) {
            fault(e);
        }
    }

    /** SondeHooks: plaintext an SSLEngine consumed (wrap) or produced (unwrap). */
    static void engineData(Object engine, int dir, ByteBuffer[] bufs, int off, int[] at) {
        try {
            Stream s = Stream.of(engine);
            long n = 0;
            for (int i = 0; i < at.length; i++)
                n += Math.max(0, bufs[off + i].position() - at[i]);
            if (n <= 0 || n > Integer.MAX_VALUE)
                return;
            send(s, dir, F_ENGINE, null, 0, (int) n, bufs, off, at);
        } catch (Throwable e) {
            fault(e);
        }
    }

    /* --- messages ------------------------------------------------------------------------ */

    static void header(ByteBuffer o, int kind, int dir, int fd, int len, long id, long pos,
                               int flags, int cap) {
        o.putInt(MAGIC).putShort((short) HDR).put((byte) kind).put((byte) dir).putInt(fd).putInt(len)
         .putLong(id).putLong(pos).putInt(flags).putInt(cap);
    }

    /** One data message: n bytes of stream s, from b[off..] or from bufs[boff+i] at at[i]. */
    private static void send(Stream s, int dir, int flags, byte[] b, int off, int n,
                             ByteBuffer[] bufs, int boff, int[] at) {
        Session ss = cur;
        if (ss == null)
            return;
        ByteBuffer o = out.get();
        o.clear();
        synchronized (s) {
            long pos = s.pos[dir];
            s.pos[dir] += n;
            int fd = s.fd >= 0 ? s.fd : -1;
            int cap = fd >= 0 ? Math.min(n, ss.cap) : 0;
            header(o, KIND_DATA, dir, fd, n, s.id, pos, flags, cap);
            if (b != null) {
                o.put(b, off, cap);
            } else {
                for (int i = 0; i < at.length && o.position() < HDR + cap; i++) {
                    ByteBuffer d = bufs[boff + i].duplicate();
                    int end = d.position(), room = HDR + cap - o.position();
                    if (end <= at[i])
                        continue;
                    d.position(at[i]);
                    d.limit(Math.min(end, at[i] + room));
                    o.put(d);
                }
            }
            o.flip();
            write(ss, o);
        }
    }

    static ByteBuffer text(int kind, String text) {
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        int cap = Math.min(b.length, MAX_CAP);
        ByteBuffer o = ByteBuffer.allocateDirect(HDR + cap).order(ByteOrder.LITTLE_ENDIAN);
        header(o, kind, 0, -1, cap, 0, 0, 0, cap);
        o.put(b, 0, cap);
        o.flip();
        return o;
    }

    static void message(int kind, String text) {
        Session ss = cur;
        if (ss == null)
            return;
        ByteBuffer o = text(kind, text);
        synchronized (ss) {
            write(ss, o);
        }
    }

    static void write(Session ss, ByteBuffer o) {
        if (!ss.uninterruptible && Thread.currentThread().isInterrupted())
            return; // the write would close the channel; the plugin sees a gap
        try {
            if (ss.sinkPath != null)
                ss.sink.write(o);
            else
                ss.sink.write(o, ss.token);
        } catch (java.nio.channels.ClosedByInterruptException e) {
            reopen(ss);
        } catch (Throwable e) {
            fault(e);
        }
    }

    private static void reopen(Session ss) {
        synchronized (life) {
            if (cur != ss || ss.sink.isOpen())
                return;
            try {
                ss.sink = openSink(ss.sinkPath);
            } catch (Throwable e) {
                fault(e);
            }
        }
    }
}
