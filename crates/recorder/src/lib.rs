pub use mkv_element;
