package cluster

// GossipMemberNames returns every member n's memberlist knows, of any
// ClusterName, alive or not: what reached it on the wire, before the
// ClusterName filter of Members.
func GossipMemberNames(n *Node) []string {
	var names []string
	for _, m := range n.ml.Members() {
		names = append(names, m.Name)
	}
	return names
}
