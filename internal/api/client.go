package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Client talks to a daemon's API socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Socket: path, hc: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// Get fetches an API path into v.
func (c *Client) Get(path string, v any) error {
	resp, err := c.hc.Get("http://overcast" + path)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s", strings.TrimSpace(string(b))) // the daemon's message says what to do
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// dialError says why the daemon could not be reached and what to do,
// without the client's internal URL.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied: the API socket is for root only; run this as root (sudo overcast ...)", c.Socket)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no daemon answers on %s: start it (overcast daemon -c /etc/overcast.yaml), or name its api-socket with --socket PATH", c.Socket)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("the daemon on %s did not answer: %w (is it running? overcast show status --socket %s)", c.Socket, err, c.Socket)
}

// Post runs an action (PATH/ARG) and decodes its answer into v.
func (c *Client) Post(path, arg string, v any) error {
	resp, err := c.hc.Post("http://overcast"+path+"/"+url.PathEscape(arg), "application/json", nil)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s", strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// PostJSON runs an action with a JSON body and decodes its answer into v.
func (c *Client) PostJSON(path string, body, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Post("http://overcast"+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s", strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Fetch gets a view's answer into a new value of its type.
func (c *Client) Fetch(v View, arg string) (any, error) {
	out := v.New()
	p := v.Path
	if v.Arg != "" {
		p += "/" + arg
	}
	if err := c.Get(p, out); err != nil {
		return nil, err
	}
	return out, nil
}

func get[T any](c *Client, path string) (T, error) {
	var v T
	return v, c.Get(path, &v)
}

func (c *Client) IGMPGroups() ([]IGMPGroup, error) { return get[[]IGMPGroup](c, PathIGMPGroups) }
func (c *Client) IGMPInterfaces() ([]IGMPInterface, error) {
	return get[[]IGMPInterface](c, PathIGMPInterfaces)
}
func (c *Client) MRoutes() ([]MRoute, error) { return get[[]MRoute](c, PathMRoute) }
func (c *Client) Status() (Status, error)    { return get[Status](c, PathStatus) }
func (c *Client) PIMNeighbors() ([]PIMNeighbor, error) {
	return get[[]PIMNeighbor](c, PathPIMNeighbors)
}
func (c *Client) PIMInterfaces() ([]PIMInterface, error) {
	return get[[]PIMInterface](c, PathPIMInterfaces)
}
func (c *Client) PIMRPs() ([]PIMRP, error)         { return get[[]PIMRP](c, PathPIMRP) }
func (c *Client) PIMAsserts() ([]PIMAssert, error) { return get[[]PIMAssert](c, PathPIMAssert) }
func (c *Client) PIMJoins() ([]PIMJoin, error)     { return get[[]PIMJoin](c, PathPIMJoin) }
func (c *Client) PIMStatistics() (PIMStatistics, error) {
	return get[PIMStatistics](c, PathPIMStatistics)
}
func (c *Client) RPF(addr string) (RPF, error) { return get[RPF](c, PathRPF+"/"+addr) }

func (c *Client) MSDPPeers() ([]MSDPPeer, error) { return get[[]MSDPPeer](c, PathMSDPPeer) }
func (c *Client) MSDPSACache() ([]MSDPSA, error) { return get[[]MSDPSA](c, PathMSDPSACache) }
func (c *Client) MSDPRPFPeer(rp string) (MSDPRPF, error) {
	return get[MSDPRPF](c, PathMSDPRPFPeer+"/"+rp)
}

func (c *Client) BGPRoutes() ([]BGPRoute, error)  { return get[[]BGPRoute](c, PathBGPMulticast) }
func (c *Client) BGPSummary() (BGPSummary, error) { return get[BGPSummary](c, PathBGPSummary) }
