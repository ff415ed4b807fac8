package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
		return fmt.Errorf("is the daemon running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c *Client) IGMPGroups() ([]IGMPGroup, error) {
	var v []IGMPGroup
	return v, c.Get("/v1/igmp/groups", &v)
}

func (c *Client) IGMPInterfaces() ([]IGMPInterface, error) {
	var v []IGMPInterface
	return v, c.Get("/v1/igmp/interfaces", &v)
}

func (c *Client) MRoutes() ([]MRoute, error) {
	var v []MRoute
	return v, c.Get("/v1/mroute", &v)
}

func (c *Client) Status() (Status, error) {
	var v Status
	return v, c.Get("/v1/status", &v)
}

func (c *Client) PIMNeighbors() ([]PIMNeighbor, error) {
	var v []PIMNeighbor
	return v, c.Get("/v1/pim/neighbors", &v)
}

func (c *Client) PIMInterfaces() ([]PIMInterface, error) {
	var v []PIMInterface
	return v, c.Get("/v1/pim/interfaces", &v)
}

func (c *Client) PIMRPs() ([]PIMRP, error) {
	var v []PIMRP
	return v, c.Get("/v1/pim/rp", &v)
}

func (c *Client) PIMAsserts() ([]PIMAssert, error) {
	var v []PIMAssert
	return v, c.Get("/v1/pim/assert", &v)
}

func (c *Client) PIMJoins() ([]PIMJoin, error) {
	var v []PIMJoin
	return v, c.Get("/v1/pim/join", &v)
}

func (c *Client) RPF(addr string) (RPF, error) {
	var v RPF
	return v, c.Get("/v1/rpf/"+addr, &v)
}
