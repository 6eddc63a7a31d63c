// Asio's and asio::ssl's compiled parts, once for the whole program
// (ASIO_SEPARATE_COMPILATION, set in CMakeLists.txt).
#include <asio/impl/src.hpp>
#include <asio/ssl/impl/src.hpp>
