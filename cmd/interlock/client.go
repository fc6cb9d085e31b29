package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/interlockraft/interlock/cluster/httpapi"
)

// client sends one request to a node's API.
type client struct {
	base    string
	token   string
	timeout time.Duration
}

// unreachableError means no HTTP answer came back at all.
type unreachableError struct {
	addr string
	err  error
}

func (e unreachableError) Error() string {
	return fmt.Sprintf("cannot reach %s: %s (is the node running, and is -addr or INTERLOCK_ADDR right?)", e.addr, oneLine(cause(e.err).Error()))
}

// cause strips net/http's wrapping, which repeats the method and URL.
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// do sends method path and returns the body of a 2xx answer. Any other
// answer becomes an error carrying the API's Error text.
func (c *client) do(method, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" && method == http.MethodPost {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, unreachableError{addr: c.base, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, unreachableError{addr: c.base, err: err}
	}
	if resp.StatusCode/100 == 2 {
		return body, nil
	}
	var e httpapi.Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
	}
	return nil, fmt.Errorf("%s %s answered %s, not the Interlock API's JSON; is -addr a node's API? (body: %.80q)", method, c.base+path, resp.Status, strings.TrimSpace(string(body)))
}

// get fetches path into v, and returns the raw body for -json.
func (c *client) get(path string, v any) ([]byte, error) {
	body, err := c.do(http.MethodGet, path)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("GET %s: the answer is not the API's JSON: %v; is -addr a node's API?", c.base+path, err)
	}
	return body, nil
}

// printJSON writes a body as the API sent it, indented.
func printJSON(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		buf.Reset()
		buf.Write(body)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		buf.WriteByte('\n')
	}
	_, err := w.Write(buf.Bytes())
	return err
}
