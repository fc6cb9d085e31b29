.PHONY: demo test vet

# Three nodes in one process; fails unless every tick ran exactly once.
demo:
	go run ./examples/three-node -for 15s

test:
	go test -race -count=1 -timeout 15m ./...

vet:
	go vet ./...
