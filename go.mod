module overcast

go 1.26.8

require (
	github.com/vishvananda/netlink v1.3.1
	golang.org/x/net v0.47.0
	golang.org/x/sys v0.38.0
	gopkg.in/yaml.v3 v3.0.1
)

require github.com/vishvananda/netns v0.0.5 // indirect
