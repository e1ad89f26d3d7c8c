# Runs after boot.py on every reset: the node (node.py) does the rest.
import node

node.main()
