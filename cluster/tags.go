package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
)

// maxTagBytes bounds the encoded size of Config.Tags. memberlist caps a
// node's metadata at 512 bytes, and the rest of it (cluster name,
// addresses, flags) needs room too.
const maxTagBytes = 256

// validateTags checks Config.Tags: keys must be non-empty, and the tags
// must fit in the node's gossip metadata.
func validateTags(tags map[string]string) error {
	for k := range tags {
		if k == "" {
			return fmt.Errorf("%w: Tags has an empty key; name every tag, such as \"zone\": \"eu-1\"", ErrInvalidConfig)
		}
	}
	b, _ := json.Marshal(tags)
	if len(b) > maxTagBytes {
		return fmt.Errorf("%w: Tags encode to %d bytes, more than the %d that fit in gossip metadata; use fewer or shorter tags", ErrInvalidConfig, len(b), maxTagBytes)
	}
	return nil
}

// cloneTags copies Config.Tags so the caller's map can change after Start
// without racing the node's readers.
func cloneTags(tags map[string]string) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	return maps.Clone(tags)
}
