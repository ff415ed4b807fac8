.PHONY: build test demo fuzz bench soak
build:
	go build -o overcast ./cmd/overcast
test:
	go test -p 1 -count=1 -timeout 20m ./...
demo:
	go run ./cmd/overcast demo
fuzz:
	go test ./internal/packet/igmp -run XXX -fuzz FuzzParse -fuzztime 60s
	go test ./internal/igmp -run XXX -fuzz FuzzInterface -fuzztime 60s
	go test ./internal/packet/ip4 -run XXX -fuzz FuzzParse -fuzztime 30s
	go test ./internal/packet/pim -run XXX -fuzz FuzzParse -fuzztime 60s
	go test ./internal/pim -run XXX -fuzz FuzzRouter -fuzztime 60s
	go test ./internal/packet/msdp -run XXX -fuzz FuzzParse -fuzztime 30s
	go test ./internal/msdp -run XXX -fuzz FuzzSpeaker -fuzztime 60s
	go test ./internal/daemon -run XXX -fuzz FuzzDaemon -fuzztime 60s
	go test ./internal/packet/overlay -run XXX -fuzz FuzzParse -fuzztime 30s
	go test ./internal/overlay -run XXX -fuzz FuzzNode -fuzztime 60s
	go test ./internal/mirror -run XXX -fuzz FuzzClassify -fuzztime 30s
	go test ./internal/mirror -run XXX -fuzz FuzzSetCheck -fuzztime 30s
	go test ./internal/tools/collect -run XXX -fuzz FuzzParseVXLAN -fuzztime 30s
	go test ./internal/tools/ping -run XXX -fuzz FuzzParse -fuzztime 30s
	go test ./internal/tools/addr -run XXX -fuzz FuzzParsePlan -fuzztime 30s
	go test ./internal/dataplane/linuxmr -run XXX -fuzz FuzzParseMRCache -fuzztime 30s
	go test ./internal/dataplane/linuxmr -run XXX -fuzz FuzzParseVIFs -fuzztime 30s
bench:
	go test -count=1 -run XXX -bench . -benchtime 3x ./internal/pim/
	go test -count=1 -run XXX -bench . ./internal/daemon/
	go test -count=1 -run XXX -bench . -benchtime 5x -timeout 90m ./test/e2e/
soak:
	# 40 seeds x 2,000 rounds of churn (joins, leaves, sources, link flaps, restarts) on the
	# simulated seed lab; OVERCAST_SOAK_ROUNDS=N for more, OVERCAST_SOAK_DEBUG=1 to log each round.
	go test -count=1 -run XXX -bench BenchmarkSoak -benchtime 40x ./internal/sim/
