# launch.sed - the one piece of CUDA syntax that C++ lacks: a kernel
# launch "k<<<grid, block[, shared[, stream]]>>>(args)", also with
# template arguments "k<T, U><<<...>>>(", becomes
# "tk_emu::launch(k, grid, block[, shared[, stream]])(args)"
# (include/cuda_runtime.h).  Lines keep their numbers.
s/([A-Za-z_][A-Za-z0-9_:]*(<[^<>;]*>)?)<<<(.*)>>>\(/tk_emu::launch(\1, \3)(/g
