/*
 * HandoffPeer - a JDK HTTP server whose handler hands its outgoing call to
 * another thread (the Java plugin's hand-off test, tests/live/test_java_handoff.py).
 *
 *   java HandoffPeer PORT BACKEND_PORT MODE
 *
 * com.sun.net.httpserver.HttpServer on 127.0.0.1:PORT, 6 handler threads
 * (a fixed pool). GET /req/ID makes GET http://127.0.0.1:BACKEND_PORT/backend/ID
 * with HttpURLConnection, not on the handler's thread but:
 *   pool     on a second fixed pool of 3 threads (ExecutorService.submit)
 *   cf       in CompletableFuture.supplyAsync (the JDK's default async pool)
 *   vthread  on a new virtual thread (JDK 21+)
 *   vserver  the server runs every exchange on a virtual thread of its own
 *            (Executors.newVirtualThreadPerTaskExecutor, JDK 21+), which
 *            sleeps 5 ms (it leaves its carrier) and then calls on itself
 *   direct   on the handler's own thread (no hand-off)
 *   dispatcher  on the handler's own thread, the server without an executor:
 *            every exchange runs on the server's dispatcher thread
 * waits for it, answers "ok ID <backend status>" and writes "served id=ID" to
 * stderr.
 */
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.FutureTask;

public class HandoffPeer {
    static int backendPort;

    static int call(String id) {
        try {
            URL u = new URL("http://127.0.0.1:" + backendPort + "/backend/" + id);
            HttpURLConnection c = (HttpURLConnection) u.openConnection();
            int code = c.getResponseCode();
            try (InputStream in = c.getInputStream()) {
                in.readAllBytes();
            }
            return code;
        } catch (Exception e) {
            return -1;
        }
    }

    public static void main(String[] a) throws Exception {
        int port = Integer.parseInt(a[0]);
        backendPort = Integer.parseInt(a[1]);
        String mode = a[2];
        ExecutorService calls = Executors.newFixedThreadPool(3);
        HttpServer s = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 128);
        s.createContext("/", (HttpExchange ex) -> {
            String p = ex.getRequestURI().getPath();
            String id = p.startsWith("/req/") ? p.substring(5) : p;
            int code;
            try {
                Callable<Integer> job = () -> call(id);
                if (mode.equals("direct") || mode.equals("dispatcher")) {
                    code = call(id);
                } else if (mode.equals("vserver")) {
                    Thread.sleep(5);
                    code = call(id);
                } else if (mode.equals("pool")) {
                    code = calls.submit(job).get();
                } else if (mode.equals("cf")) {
                    code = CompletableFuture.supplyAsync(() -> call(id)).get();
                } else {
                    FutureTask<Integer> f = new FutureTask<>(job);
                    Thread.class.getMethod("startVirtualThread", Runnable.class).invoke(null, f);
                    code = f.get();
                }
            } catch (Exception e) {
                code = -2;
            }
            byte[] body = ("ok " + id + " " + code + "\n").getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream o = ex.getResponseBody()) {
                o.write(body);
            }
            System.err.println("served id=" + id);
        });
        if (mode.equals("vserver"))
            s.setExecutor((ExecutorService) Executors.class.getMethod("newVirtualThreadPerTaskExecutor")
                    .invoke(null));
        else
            s.setExecutor(mode.equals("dispatcher") ? null : Executors.newFixedThreadPool(6));
        s.start();
        System.err.println("listening " + port);
        Thread.sleep(Long.MAX_VALUE);
    }
}
