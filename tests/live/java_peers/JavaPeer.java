/*
 * JavaPeer - the Java programs the Java plugin's tests run (JDK only).
 *
 *   java JavaPeer https PORT KEYSTORE PASS [THREADS]   com.sun.net.httpserver.HttpsServer
 *                                                       (TLS in SSLEngine, NIO channels)
 *   java JavaPeer sslsocket PORT KEYSTORE PASS         an HTTP/1.1 server on SSLServerSocket
 *                                                       (TLS in SSLSocket), a thread per connection
 *   java JavaPeer http PORT                            com.sun.net.httpserver.HttpServer, plain
 *
 * Every server answers GET /req/ID with "ok ID" and writes "served id=ID"
 * to stderr once the answer is sent (the tests count these lines). The
 * keystore is PKCS12 (keytool -genkeypair).
 *
 * Commands on stdin, one per line, each answered on stdout:
 *   get URL N      N GETs of URL0 .. URL(N-1) with HttpsURLConnection (an
 *                  SSLSocket client; certificates not checked), keep-alive;
 *                  answers "done OK" with the number answered 200
 *   ping           answers "pong" (the JVM is alive and serving commands)
 */
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

public class JavaPeer {
    static String idOf(String path) {
        return path.startsWith("/req/") ? path.substring(5) : path;
    }

    static final HttpHandler HANDLER = new HttpHandler() {
        @Override
        public void handle(HttpExchange ex) throws IOException {
            InputStream in = ex.getRequestBody();
            while (in.read() >= 0) {
                // drain the request body
            }
            String id = idOf(ex.getRequestURI().getPath());
            byte[] body = ("ok " + id + "\n").getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", "text/plain");
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream o = ex.getResponseBody()) {
                o.write(body);
            }
            System.err.println("served id=" + id);
        }
    };

    static SSLContext serverContext(String ks, String pass) throws Exception {
        KeyStore k = KeyStore.getInstance("PKCS12");
        try (FileInputStream f = new FileInputStream(ks)) {
            k.load(f, pass.toCharArray());
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(k, pass.toCharArray());
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), null, null);
        return ctx;
    }

    public static void main(String[] a) throws Exception {
        String mode = a[0];
        int port = Integer.parseInt(a[1]);
        InetSocketAddress addr = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
        if (mode.equals("https")) {
            HttpsServer s = HttpsServer.create(addr, 128);
            s.setHttpsConfigurator(new HttpsConfigurator(serverContext(a[2], a[3])));
            s.createContext("/", HANDLER);
            int threads = a.length > 4 ? Integer.parseInt(a[4]) : 4;
            s.setExecutor(threads > 0 ? Executors.newFixedThreadPool(threads) : null);
            s.start();
        } else if (mode.equals("http")) {
            HttpServer s = HttpServer.create(addr, 128);
            s.createContext("/", HANDLER);
            s.setExecutor(Executors.newFixedThreadPool(4));
            s.start();
        } else if (mode.equals("sslsocket")) {
            SSLServerSocket ss = (SSLServerSocket) serverContext(a[2], a[3]).getServerSocketFactory()
                    .createServerSocket(port, 128, InetAddress.getLoopbackAddress());
            ExecutorService pool = Executors.newCachedThreadPool();
            Thread acc = new Thread(() -> {
                for (;;) {
                    try {
                        Socket c = ss.accept();
                        pool.execute(() -> serveSocket(c));
                    } catch (IOException e) {
                        return;
                    }
                }
            }, "acceptor");
            acc.setDaemon(true);
            acc.start();
        } else {
            throw new IllegalArgumentException("mode " + mode);
        }
        System.err.println("listening " + port);
        commands();
        // stdin closed: keep serving until killed
        Thread.sleep(Long.MAX_VALUE);
    }

    /* --- the SSLSocket server: HTTP/1.1, keep-alive, GET only ----------------- */

    static void serveSocket(Socket c) {
        try (Socket s = c) {
            InputStream in = s.getInputStream();
            OutputStream out = s.getOutputStream();
            for (;;) {
                String head = readHead(in);
                if (head == null)
                    return;
                String line = head.substring(0, head.indexOf("\r\n"));
                String[] parts = line.split(" ");
                String id = parts.length > 1 ? idOf(parts[1]) : "?";
                byte[] body = ("ok " + id + "\n").getBytes(StandardCharsets.UTF_8);
                String h = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + body.length
                        + "\r\n\r\n";
                out.write(h.getBytes(StandardCharsets.US_ASCII));
                out.write(body);
                out.flush();
                System.err.println("served id=" + id);
                if (head.toLowerCase().contains("\r\nconnection: close"))
                    return;
            }
        } catch (IOException e) {
            // the client went away
        }
    }

    /** The request head up to the blank line, or null at end of stream. */
    static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        int state = 0;
        for (;;) {
            int c = in.read();
            if (c < 0)
                return null;
            b.write(c);
            state = (c == '\r' && (state == 0 || state == 2)) ? state + 1
                    : (c == '\n' && (state == 1 || state == 3)) ? state + 1 : 0;
            if (state == 4)
                return b.toString(StandardCharsets.US_ASCII);
            if (b.size() > 65536)
                throw new IOException("request head too long");
        }
    }

    /* --- commands ------------------------------------------------------------------ */

    static void commands() throws Exception {
        BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = r.readLine()) != null) {
            String[] w = line.trim().split(" ");
            if (w[0].equals("ping")) {
                System.out.println("pong");
            } else if (w[0].equals("get") && w.length == 3) {
                System.out.println("done " + get(w[1], Integer.parseInt(w[2])));
            } else {
                System.out.println("what? " + line);
            }
            System.out.flush();
        }
    }

    static int get(String url, int n) throws Exception {
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, new TrustManager[] {new X509TrustManager() {
            @Override
            public void checkClientTrusted(X509Certificate[] c, String t) {
            }

            @Override
            public void checkServerTrusted(X509Certificate[] c, String t) {
            }

            @Override
            public X509Certificate[] getAcceptedIssuers() {
                return new X509Certificate[0];
            }
        }}, null);
        int ok = 0;
        for (int i = 0; i < n; i++) {
            HttpsURLConnection c = (HttpsURLConnection) new URL(url + i).openConnection();
            c.setSSLSocketFactory(ctx.getSocketFactory());
            c.setHostnameVerifier((h, s) -> true);
            try (InputStream in = c.getInputStream()) {
                in.readAllBytes();
            }
            if (c.getResponseCode() == 200)
                ok++;
        }
        return ok;
    }
}
