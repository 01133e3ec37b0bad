"""How a stack runs. Each runtime builds argv lists for its phases; a transport runs them."""
