// tlsserver - the Go HTTPS server of the Go plugin's live test: crypto/tls
// (not OpenSSL), net/http, one goroutine per connection. Each request
// /req/<id> sleeps, then calls the back end with net/http as
// GET <backend>/backend/<id> (plain HTTP, a shared keep-alive pool), either
// on the handler's goroutine or, with ?spawn=1, on a goroutine the handler
// starts and waits for. It logs one line per request it served and per
// back-end call it made, so the test counts spans against the server's own
// numbers.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "listen address")
	cert := flag.String("cert", "", "certificate (PEM)")
	key := flag.String("key", "", "private key (PEM)")
	backend := flag.String("backend", "", "back end base URL (http://host:port)")
	sleep := flag.Duration("sleep", 100*time.Millisecond, "handler sleep")
	flag.Parse()
	logger := log.New(os.Stderr, "", 0)
	client := &http.Client{Timeout: 10 * time.Second}
	var served, calls, failed int64

	call := func(id string) {
		resp, err := client.Get(*backend + "/backend/" + id)
		if err != nil {
			atomic.AddInt64(&failed, 1)
			logger.Printf("backend-error id=%s %v", id, err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		atomic.AddInt64(&calls, 1)
		logger.Printf("backend id=%s status=%d", id, resp.StatusCode)
	}
	http.HandleFunc("/req/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/req/")
		time.Sleep(*sleep)
		if *backend != "" {
			if r.URL.Query().Get("spawn") == "1" {
				var wg sync.WaitGroup
				wg.Add(1)
				go func() { defer wg.Done(); call(id) }()
				wg.Wait()
			} else {
				call(id)
			}
		}
		atomic.AddInt64(&served, 1)
		logger.Printf("served id=%s", id)
		fmt.Fprintf(w, "ok %s\n", id)
	})
	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "served=%d calls=%d failed=%d\n", atomic.LoadInt64(&served),
			atomic.LoadInt64(&calls), atomic.LoadInt64(&failed))
	})
	srv := &http.Server{Addr: *addr}
	logger.Printf("listening %s", *addr)
	if *cert != "" {
		logger.Fatal(srv.ListenAndServeTLS(*cert, *key))
	}
	logger.Fatal(srv.ListenAndServe())
}
