"""The baseline store, its entries and the regression rule that compares against them."""
