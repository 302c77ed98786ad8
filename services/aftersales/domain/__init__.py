"""After-sales' pure rules: the order as a ticket saw it, refund vouchers to the cent, the ticket and
its legal moves, auto-approval rule sets, the SLA clock and the retention touch. Standard library
only (and the kit's plain errors); time is passed in."""
