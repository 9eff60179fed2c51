// backend - a plain-HTTP back end for the Go plugin's live test: answers
// GET /backend/<id> with "ok <id>" after a short pause and logs each one.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	logger := log.New(os.Stderr, "", 0)
	http.HandleFunc("/backend/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/backend/")
		time.Sleep(20 * time.Millisecond)
		logger.Printf("answered id=%s", id)
		fmt.Fprintf(w, "ok %s\n", id)
	})
	logger.Printf("listening %s", *addr)
	logger.Fatal(http.ListenAndServe(*addr, nil))
}
