document.getElementById("note").textContent = "The script ran.";
