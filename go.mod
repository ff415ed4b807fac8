module overcast

go 1.26.8
