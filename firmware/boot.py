# Runs first on every reset. Kept trivial so it can never be the reason a board
# fails to boot: the REPL stays reachable over USB for mpremote.
import gc

gc.collect()
